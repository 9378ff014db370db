// The step batch (runtime/model/step_batch.h) through the whole model: a step that mixes prompt chunks,
// decodes and all-logits requests gives every sequence the bits it gets alone (batch_invariant), in the
// steps' order; a fixed layout (CUDA graphs' padding, exercised here on the CPU) changes no real row and
// writes nothing into a real sequence's pages; a bad step fails before any cache is touched.
#include <gtest/gtest.h>

#include "golden_fixture.h"
#include "util/error.h"

namespace moert::testing {
namespace {

struct Seq {
  std::vector<int32_t> prompt;
  int64_t past = 0;  // prompt tokens run before the step (one prefill)
  int64_t n = 1;     // tokens in the step
  bool all = false;
};

// Logits of each sequence's step: alone (one forward per sequence), or all in one step.
std::vector<std::vector<float>> run(Golden& g, const std::vector<Seq>& seqs, bool together,
                                    const FixedLayout* fixed = nullptr) {
  LatentCache c = g.cache();
  const int64_t V = g.cfg.vocab_size;
  std::vector<KvSequence> kv;
  for (size_t i = 0; i < seqs.size(); ++i) kv.emplace_back(&c);
  for (size_t i = 0; i < seqs.size(); ++i)
    if (seqs[i].past > 0) {
      std::vector<SequenceStep> pre{{&kv[i], seqs[i].prompt.data(), seqs[i].past}};
      g.model->forward(pre, nullptr);
    }
  std::vector<std::vector<float>> out(seqs.size());
  std::vector<SequenceStep> steps;
  for (size_t i = 0; i < seqs.size(); ++i) {
    out[i].resize((seqs[i].all ? seqs[i].n : 1) * V);
    steps.push_back({&kv[i], seqs[i].prompt.data() + seqs[i].past, seqs[i].n, seqs[i].all});
  }
  if (together) {
    StepBatch batch(*g.backend, g.cfg, AttentionForm::kAuto, steps, false, fixed);
    const Tensor logits = g.model->forward(batch);
    EXPECT_EQ(batch.logits_wanted(), static_cast<int64_t>(steps.size()) + (seqs[1].all ? seqs[1].n - 1 : 0));
    int64_t row = 0;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int64_t n = seqs[i].all ? seqs[i].n : 1;
      g.backend->copy_to_host(logits.slice_rows(row, n), out[i].data());
      row += n;
    }
  } else {
    for (size_t i = 0; i < seqs.size(); ++i) {
      std::vector<SequenceStep> one{steps[i]};
      g.model->forward(one, out[i].data());
    }
  }
  // One more decode for every sequence, alone: what the step wrote into the caches is what it should be.
  for (size_t i = 0; i < seqs.size(); ++i) {
    const int32_t t = 7;
    std::vector<float> l(V);
    std::vector<SequenceStep> one{{&kv[i], &t, 1}};
    g.model->forward(one, l.data());
    out[i].insert(out[i].end(), l.begin(), l.end());
  }
  return out;
}

std::vector<int32_t> tokens(int64_t n, int32_t seed, int64_t vocab) {
  std::vector<int32_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>((seed * 7919 + i * 104729) % vocab);
  return v;
}

TEST(StepBatch, MixedStepGivesEachSequenceItsBitsInStepOrder) {
  ModelOptions o;
  Golden g("tiny-v3-fp8", o, 2, /*batch_invariant=*/true);
  const int64_t V = g.cfg.vocab_size;
  // A prompt chunk first (expanded, laid out after the decodes), an all-logits chunk, then two decodes.
  const std::vector<Seq> seqs{{tokens(30, 1, V), 10, 20, false},
                              {tokens(12, 2, V), 0, 12, true},
                              {tokens(25, 3, V), 24, 1, false},
                              {tokens(9, 4, V), 8, 1, false}};
  const auto alone = run(g, seqs, false), together = run(g, seqs, true);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(together[i], alone[i]) << "sequence " << i;
}

TEST(StepBatch, FixedLayoutPaddingChangesNoRealRow) {
  ModelOptions o;
  Golden g("tiny-v3-bf16", o, 2, /*batch_invariant=*/true);
  const int64_t V = g.cfg.vocab_size;
  const std::vector<Seq> seqs{
      {tokens(20, 5, V), 19, 1, false}, {tokens(40, 6, V), 39, 1, false}, {tokens(3, 7, V), 2, 1, false}};
  LatentCache probe = g.cache();
  FixedLayout fixed;
  fixed.rows = 8;
  fixed.table = g.backend->empty(DType::kI32, StepBatch::fixed_table_size(8, probe.total_pages()), 1);
  const auto plain = run(g, seqs, true), padded = run(g, seqs, true, &fixed);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(padded[i], plain[i]) << "sequence " << i;
}

TEST(StepBatch, ABadStepFailsBeforeAnyCacheIsTouched) {
  Golden g("tiny-v3-bf16");
  LatentCache c = g.cache();
  KvSequence a(&c), b(&c);
  const std::vector<int32_t> ok = tokens(5, 1, g.cfg.vocab_size);
  const int32_t bad[2] = {1, static_cast<int32_t>(g.cfg.vocab_size)};
  std::vector<SequenceStep> steps{{&a, ok.data(), 5}, {&b, bad, 2}};
  try {
    StepBatch batch(*g.backend, g.cfg, AttentionForm::kAuto, steps, false);
    FAIL() << "a token id outside the vocabulary was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary"), std::string::npos) << e.what();
  }
  EXPECT_EQ(a.length(), 0);
  EXPECT_EQ(b.length(), 0);
  EXPECT_EQ(c.free_pages(), c.total_pages());
}

}  // namespace
}  // namespace moert::testing
