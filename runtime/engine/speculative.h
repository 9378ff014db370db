// Speculative decoding's acceptance rule: which drafted tokens the main model keeps. The drafts come from
// the MTP module greedily (a draft distribution that is one token), so standard speculative sampling
// (Leviathan et al., Chen et al.) reduces to: keep draft d with probability p(d); at the first rejection
// draw from p with d removed (renormalised); after every draft kept, one more token from the next row. For
// a greedy request that is "keep while the argmax equals the draft", which emits exactly the tokens
// decoding one at a time would.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/sampling.h"

namespace moert {

// logits: drafts.size() + 1 rows of `vocab` (row j: the main model's logits after the j-th fed token).
// Returns the tokens to emit: the kept drafts, then the main model's own token (at least one token).
std::vector<int32_t> accept_drafts(const float* logits, int64_t vocab, const std::vector<int32_t>& drafts,
                                   const SamplingParams& p, SamplingRng& rng, const TokenHistory* history);

}  // namespace moert
