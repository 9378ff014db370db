#include "model/step_batch.h"

#include <cstring>
#include <string>
#include <unordered_map>

#include "util/error.h"

namespace moert {
namespace {

// The packed host image of every table; views are (offset, length) into it until the upload.
struct Span {
  int64_t off = 0, n = 0;
};

struct Packer {
  std::vector<int32_t> data;
  Span add(const std::vector<int32_t>& v) {
    Span s{static_cast<int64_t>(data.size()), static_cast<int64_t>(v.size())};
    data.insert(data.end(), v.begin(), v.end());
    return s;
  }
};

struct SeqLayout {
  const std::vector<int32_t>* pages;
  int64_t page_rows, row0, n, past;
  bool expanded;
};

struct PartSpans {
  int64_t row0 = 0, rows = 0, absorbed_rows = 0, absorbed_seqs = 0, seqs = 0, max_kv = 0, key_rows = 0;
  Span indptr, pages, last_len, kv_len, row_seq, key_slots, k_start;
};

int32_t slot_of(const SeqLayout& s, int64_t pos) {
  return static_cast<int32_t>((*s.pages)[pos / s.page_rows] * s.page_rows + pos % s.page_rows);
}

// The tables of rows [r0, r1) of the ordered batch.
// pages_cap > 0: the page list padded to that length (a fixed layout).
PartSpans lay_out_part(const std::vector<SeqLayout>& seqs, int64_t r0, int64_t r1, Packer& pk,
                       int64_t pages_cap = 0) {
  PartSpans p;
  p.row0 = r0;
  p.rows = r1 - r0;
  std::vector<int32_t> indptr{0}, pages, last_len, kv_len, row_seq, key_slots, k_start;
  for (const SeqLayout& s : seqs) {
    const int64_t a = std::max(s.row0, r0), b = std::min(s.row0 + s.n, r1);
    if (a >= b) continue;
    const int64_t len = s.past + (b - s.row0), pr = s.page_rows;
    const int64_t np = (len + pr - 1) / pr;
    for (int64_t i = 0; i < np; ++i) pages.push_back((*s.pages)[i]);
    indptr.push_back(static_cast<int32_t>(pages.size()));
    last_len.push_back(static_cast<int32_t>(len - (np - 1) * pr));
    kv_len.push_back(static_cast<int32_t>(len));
    p.max_kv = std::max(p.max_kv, len);
    if (!s.expanded) {
      for (int64_t r = a; r < b; ++r) row_seq.push_back(static_cast<int32_t>(p.seqs));
      p.absorbed_rows += b - a;
      ++p.absorbed_seqs;
    } else {
      const int32_t k0 = static_cast<int32_t>(key_slots.size());
      for (int64_t j = 0; j < len; ++j) key_slots.push_back(slot_of(s, j));
      for (int64_t r = a; r < b; ++r) k_start.push_back(k0);
    }
    ++p.seqs;
  }
  if (pages_cap > 0) {
    if (static_cast<int64_t>(pages.size()) > pages_cap)
      fail(ErrorCode::kInternal, "step batch: page table overflow");
    pages.resize(pages_cap, 0);
  }
  p.key_rows = static_cast<int64_t>(key_slots.size());
  p.indptr = pk.add(indptr);
  p.pages = pk.add(pages);
  p.last_len = pk.add(last_len);
  p.kv_len = pk.add(kv_len);
  p.row_seq = pk.add(row_seq);
  p.key_slots = pk.add(key_slots);
  p.k_start = pk.add(k_start);
  return p;
}

Tensor view(const Tensor& table, const Span& s) {
  Tensor t = table;
  t.rows = s.n;
  t.cols = 1;
  t.ld = 1;
  t.data = static_cast<int32_t*>(table.data) + s.off;
  return t;
}

}  // namespace

bool StepBatch::decode_only(const std::vector<SequenceStep>& steps, AttentionForm form) {
  if (steps.empty() || form == AttentionForm::kExpanded) return false;
  for (const SequenceStep& st : steps)
    if (st.n != 1 || st.all_logits || st.no_logits) return false;
  return true;
}

int64_t StepBatch::fixed_table_size(int64_t rows, int64_t total_pages) {
  // ids, positions, slots, logit rows; indptr; pages; last_page_len, kv_len, row_seq (+1: the table's spare)
  return 4 * rows + (rows + 1) + (total_pages + rows) + 3 * rows + 1;
}

int64_t StepBatch::sampling_words(const std::vector<SampleRow>& rows) {
  int64_t n = static_cast<int64_t>(rows.size()) * kSampleParamWords;
  for (const SampleRow& r : rows)
    if (r.history) n += 2 * static_cast<int64_t>(r.history->prompt.size() + r.history->output.size());
  return n;
}

namespace {

int32_t f32_bits(double v) {
  const float f = static_cast<float>(v);
  int32_t i;
  std::memcpy(&i, &f, 4);
  return i;
}

}  // namespace

void StepBatch::pack_sampling(const std::vector<SampleRow>& rows, std::vector<int32_t>& params,
                              std::vector<int32_t>& tokens) {
  for (const SampleRow& r : rows) {
    const SamplingParams& p = r.params;
    const bool penalties =
        r.history && (p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0);
    const int32_t off = static_cast<int32_t>(tokens.size() / 2);
    if (penalties) {
      std::unordered_map<int32_t, int32_t> flags;
      for (const auto& [t, n] : r.history->prompt) flags[t] |= 1;
      for (const auto& [t, n] : r.history->output) flags[t] |= 2 | (std::min<int32_t>(n, 1 << 28) << 2);
      for (const auto& [t, f] : flags) {
        tokens.push_back(t);
        tokens.push_back(f);
      }
    }
    const double u = p.temperature > 0.0 && r.rng ? r.rng->uniform() : 0.0;
    params.insert(
        params.end(),
        {f32_bits(p.temperature), static_cast<int32_t>(std::min<int64_t>(p.top_k, 1 << 30)),
         f32_bits(p.top_p), f32_bits(p.min_p), f32_bits(p.repetition_penalty), f32_bits(p.presence_penalty),
         f32_bits(u), off, static_cast<int32_t>(tokens.size() / 2) - off, f32_bits(p.frequency_penalty)});
  }
}

void check_step(const SequenceStep& st, const ModelConfig& cfg) {
  if (!st.kv || st.n <= 0 || !st.tokens)
    fail(ErrorCode::kInvalidArgument, "forward: a step has no tokens or no cache");
  for (int64_t i = 0; i < st.n; ++i)
    if (st.tokens[i] < 0 || st.tokens[i] >= cfg.vocab_size)
      fail(ErrorCode::kInvalidArgument, "token id " + std::to_string(st.tokens[i]) + " at position " +
                                            std::to_string(i) + " is outside the vocabulary [0, " +
                                            std::to_string(cfg.vocab_size) + ")");
  if (st.kv->length() + st.n > cfg.max_position_embeddings)
    fail(ErrorCode::kInvalidArgument, "sequence of " + std::to_string(st.kv->length() + st.n) +
                                          " tokens exceeds the model's context length " +
                                          std::to_string(cfg.max_position_embeddings));
}

StepBatch::StepBatch(Backend& backend, const ModelConfig& cfg, AttentionForm form,
                     std::vector<SequenceStep> steps, bool halves, const FixedLayout* fixed,
                     const std::vector<SampleRow>* sampling)
    : steps_(std::move(steps)) {
  for (const SequenceStep& st : steps_) check_step(st, cfg);
  for (const SequenceStep& st : steps_) {
    if (!cache_) cache_ = st.kv->cache();
    if (st.kv->cache() != cache_)
      fail(ErrorCode::kInvalidArgument, "forward: the steps use different caches");
  }
  for (SequenceStep& st : steps_) st.kv->reserve(st.n);  // may throw kOutOfMemory; nothing written yet

  // Absorbed-form sequences first, each form in the steps' order.
  std::vector<SeqLayout> seqs;
  std::vector<int64_t> row_of_step(steps_.size());
  int64_t T = 0;
  for (int pass = 0; pass < 2; ++pass)
    for (size_t i = 0; i < steps_.size(); ++i) {
      const SequenceStep& st = steps_[i];
      const bool expanded =
          form == AttentionForm::kExpanded || (form == AttentionForm::kAuto && st.n > 1 && !st.absorbed);
      if (expanded != (pass == 1)) continue;
      row_of_step[i] = T;
      seqs.push_back({&st.kv->pages(), st.kv->page_rows(), T, st.n, st.kv->length(), expanded});
      T += st.n;
    }
  // A fixed layout pads the batch with one-token sequences on the cache's scratch page.
  std::vector<int32_t> scratch;
  int64_t pages_cap = 0;
  if (fixed) {
    if (halves || !decode_only(steps_, form) || fixed->rows < T || !cache_)
      fail(ErrorCode::kInternal, "step batch: a fixed layout needs a decode-only batch that fits it");
    scratch.push_back(cache_->scratch_page());
    for (int64_t r = T; r < fixed->rows; ++r) seqs.push_back({&scratch, cache_->page_rows(), r, 1, 0, false});
    pages_cap = cache_->total_pages() + fixed->rows;
  }
  const int64_t rows = fixed ? fixed->rows : T;
  Packer pk;
  std::vector<int32_t> ids, pos, slots, logit_rows;
  for (const SeqLayout& s : seqs)
    for (int64_t j = 0; j < s.n; ++j) {
      pos.push_back(static_cast<int32_t>(s.past + j));
      slots.push_back(slot_of(s, s.past + j));
    }
  ids.assign(rows, 0);
  for (size_t i = 0; i < steps_.size(); ++i) {
    const SequenceStep& st = steps_[i];
    for (int64_t j = 0; j < st.n; ++j) ids[row_of_step[i] + j] = st.tokens[j];
    if (st.no_logits) continue;
    if (st.all_logits) {
      for (int64_t j = 0; j < st.n; ++j) logit_rows.push_back(static_cast<int32_t>(row_of_step[i] + j));
    } else {
      logit_rows.push_back(static_cast<int32_t>(row_of_step[i] + st.n - 1));
    }
  }
  logits_wanted_ = static_cast<int64_t>(logit_rows.size());
  for (int64_t r = T; r < rows; ++r) logit_rows.push_back(static_cast<int32_t>(r));  // the padding's, unread
  const Span s_ids = pk.add(ids), s_pos = pk.add(pos), s_slots = pk.add(slots), s_logits = pk.add(logit_rows);
  PartSpans parts[3];
  parts[0] = lay_out_part(seqs, 0, rows, pk, pages_cap);
  has_halves_ = halves;
  if (halves) {
    const int64_t split = (T + 1) / 2;
    parts[1] = lay_out_part(seqs, 0, split, pk);
    parts[2] = lay_out_part(seqs, split, T, pk);
  }

  const int64_t fixed_part = static_cast<int64_t>(pk.data.size()) + 1;
  Span s_sparams, s_stokens;
  if (sampling && !sampling->empty() && backend.device() != DeviceKind::kCpu) {
    std::vector<int32_t> params, toks;
    pack_sampling(*sampling, params, toks);
    pk.data.push_back(0);  // the fixed part's spare word
    s_sparams = pk.add(params);
    s_stokens = pk.add(toks);
    sample_table_.rows = static_cast<int64_t>(sampling->size());
  }
  // The one upload (into the fixed layout's table, whose offsets are the same every step).
  if (fixed) {
    if (fixed_part != StepBatch::fixed_table_size(fixed->rows, cache_->total_pages()) ||
        static_cast<int64_t>(pk.data.size()) + 1 > fixed->table.rows)
      fail(ErrorCode::kInternal, "step batch: the fixed layout's table has the wrong size");
    table_ = fixed->table;
    fixed_ = fixed;
  } else {
    table_ = backend.empty(DType::kI32, static_cast<int64_t>(pk.data.size()) + 1, 1);
  }
  if (!pk.data.empty()) {
    Tensor dst = table_;
    dst.rows = static_cast<int64_t>(pk.data.size());
    backend.copy_from_host_i32(pk.data.data(), dst);
  }
  logit_rows_ = view(table_, s_logits);
  if (sample_table_.rows > 0) {
    sample_table_.params = view(table_, s_sparams);
    sample_table_.tokens = view(table_, s_stokens);
  }
  const Tensor all_ids = view(table_, s_ids), all_pos = view(table_, s_pos),
               all_slots = view(table_, s_slots);
  auto make = [&](const PartSpans& p, BatchPart& out) {
    out.row0 = p.row0;
    out.rows = p.rows;
    out.absorbed_rows = p.absorbed_rows;
    out.absorbed_seqs = p.absorbed_seqs;
    out.ids = all_ids.slice_rows(p.row0, p.rows);
    out.positions = all_pos.slice_rows(p.row0, p.rows);
    out.slots = all_slots.slice_rows(p.row0, p.rows);
    out.kv.indptr = view(table_, p.indptr);
    out.kv.pages = view(table_, p.pages);
    out.kv.last_page_len = view(table_, p.last_len);
    out.kv.kv_len = view(table_, p.kv_len);
    out.kv.seqs = p.seqs;
    out.kv.max_kv_len = p.max_kv;
    out.row_seq = view(table_, p.row_seq);
    out.key_rows = p.key_rows;
    out.key_slots = view(table_, p.key_slots);
    out.k_start = view(table_, p.k_start);
  };
  row_of_step_ = std::move(row_of_step);
  make(parts[0], whole_);
  if (halves) {
    make(parts[1], half_[0]);
    make(parts[2], half_[1]);
  }
}

void StepBatch::advance() {
  for (SequenceStep& st : steps_) st.kv->advance(st.n);
}

}  // namespace moert
