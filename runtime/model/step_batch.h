// The step batch: everything one forward step needs besides the weights and the cache, built once per
// engine step, validated where it is built, and uploaded in one copy. Its rows are the step's new tokens
// with the sequences that attend over the latent (absorbed form: decodes) first and those that expand k/v
// (prefill chunks) after them, so each form's rows are contiguous; logit_rows maps the rows whose logits
// are wanted back to the steps' order. The sequences' pages form one CSR table (FlashInfer's paged_kv_t).
//
// For the two-microbatch overlap the batch is also cut into two halves at row (T + 1) / 2 (a sequence may
// straddle the cut; its second part then attends after its first part, which the same layer wrote just
// before); each half has its own tables, in the same upload.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "config/model_config.h"
#include "kv/latent_cache.h"

namespace moert {

enum class AttentionForm : uint8_t {
  kAuto,      // expanded when a sequence brings more than one new token, absorbed otherwise
  kExpanded,  // always expand k/v from the latent (as transformers does)
  kAbsorbed,  // always attend over the latent with kv_b absorbed into q and the output
};

// One sequence's part of a forward step: `n` new tokens appended after what its cache holds.
struct SequenceStep {
  KvSequence* kv = nullptr;
  const int32_t* tokens = nullptr;
  int64_t n = 0;
  bool all_logits = false;  // logits for every new token; else for the last only
  bool no_logits = false;   // no logits at all (a prompt chunk that is not the last)
  // The absorbed form for these few tokens in AttentionForm::kAuto (a speculative verify step: its tokens
  // attend over the latent like decodes, each row causally, and get the bits sequential decodes would).
  bool absorbed = false;
};

// Error(kInvalidArgument) unless the step has tokens and a cache, every token id is in the vocabulary and
// the sequence stays within the context length.
void check_step(const SequenceStep& st, const ModelConfig& cfg);

// A (micro)batch: rows [row0, row0 + rows) of the step. Its first absorbed_rows rows (sequences
// [0, absorbed_seqs) of kv) attend over the latent; the others (sequences [absorbed_seqs, kv.seqs)) expand.
struct BatchPart {
  int64_t row0 = 0, rows = 0, absorbed_rows = 0, absorbed_seqs = 0;
  Tensor ids, positions, slots;  // I32 [rows, 1]: token id, position, cache slot of each row
  PagedKv kv;                    // this part's sequences; kv_len counts the tokens up to this part's end
  Tensor row_seq;                // I32 [absorbed_rows, 1]: each absorbed row's sequence in kv
  // Expanded rows: their sequences' keys gathered from the cache (every token up to this part's end).
  int64_t key_rows = 0;
  Tensor key_slots;  // I32 [key_rows, 1]: the cache slot of each gathered key
  Tensor k_start;    // I32 [rows - absorbed_rows, 1]: each expanded row's first key in the gathered keys
  int64_t expanded_rows() const { return rows - absorbed_rows; }
};

// For CUDA graphs: a decode-only batch padded to `rows` one-token sequences (the padding on the cache's
// scratch page), every table at the same offset of `table` ([fixed_table_size, 1] I32 in the backend's
// memory) whatever the step, so a graph captured over one step replays over the next one's tables. The
// table may be longer: the packed sampling rows follow the fixed part.
struct FixedLayout {
  int64_t rows = 0;
  Tensor table;
};

class StepBatch {
 public:
  // Every step a single decode token (absorbed form): what a fixed layout can hold.
  static bool decode_only(const std::vector<SequenceStep>& steps, AttentionForm form);
  static int64_t fixed_table_size(int64_t rows, int64_t total_pages);

  // Checks every step (tokens present and in the vocabulary, context length), reserves the cache pages
  // (Error(kOutOfMemory) for a sequence that does not fit, before anything is written), lays out the rows
  // and uploads the tables. `halves`: also build the two microbatches. Throws Error(kInvalidArgument) for a
  // bad step.
  // `sampling`: the rows the step will sample (for a device backend packed into the same upload, see
  // SampleTable; each row's RNG then draws its uniform here).
  StepBatch(Backend& backend, const ModelConfig& cfg, AttentionForm form, std::vector<SequenceStep> steps,
            bool halves, const FixedLayout* fixed = nullptr,
            const std::vector<SampleRow>* sampling = nullptr);
  // I32 words the packed sampling rows take (after a fixed layout's tables).
  static int64_t sampling_words(const std::vector<SampleRow>& rows);
  // The rows' parameters and penalty tokens as SampleTable lays them out; each row's RNG draws its uniform.
  static void pack_sampling(const std::vector<SampleRow>& rows, std::vector<int32_t>& params,
                            std::vector<int32_t>& tokens);
  // An empty batch (a rank with no tokens still takes part in expert parallelism's exchanges).
  StepBatch() = default;

  int64_t tokens() const { return whole_.rows; }
  const BatchPart& whole() const { return whole_; }
  bool has_halves() const { return has_halves_; }
  const BatchPart& half(int i) const { return half_[i]; }
  // I32 [R, 1]: the row of each logits row, in the steps' order (all_logits: every row of that step).
  const Tensor& logit_rows() const { return logit_rows_; }
  int64_t logits_count() const { return logit_rows_.rows; }
  // The logits rows the steps asked for: the first logits_wanted() of logits_count() (a fixed layout's
  // padding rows follow them).
  int64_t logits_wanted() const { return logits_wanted_; }
  // The packed sampling rows (device backends), or null.
  const SampleTable* sample_table() const { return sample_table_.rows > 0 ? &sample_table_ : nullptr; }
  // The fixed layout the batch was laid out in, or null.
  const FixedLayout* fixed_layout() const { return fixed_; }
  const std::vector<SequenceStep>& steps() const { return steps_; }
  // The batch row of step i's first token (its tokens are rows row_of(i) .. + n - 1).
  int64_t row_of(size_t i) const { return row_of_step_[i]; }
  // The cache every step's sequence draws from (null for an empty batch).
  const LatentCache* cache() const { return cache_; }
  // Marks every step's tokens as written (after the forward).
  void advance();

 private:
  std::vector<SequenceStep> steps_;
  std::vector<int64_t> row_of_step_;
  BatchPart whole_, half_[2];
  bool has_halves_ = false;
  int64_t logits_wanted_ = 0;
  const FixedLayout* fixed_ = nullptr;
  SampleTable sample_table_;
  const LatentCache* cache_ = nullptr;
  Tensor logit_rows_, table_;  // table_: the one upload every view points into
};

}  // namespace moert
