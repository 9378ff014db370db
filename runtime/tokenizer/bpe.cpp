#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace moert::tok {

size_t StringHash::operator()(std::string_view s) const noexcept {
  // FNV-1a, 64-bit, 8 bytes at a time for longer strings.
  uint64_t h = 0xCBF29CE484222325ULL;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0x100000001B3ULL;
    h ^= h >> 29;
  }
  for (; i < s.size(); ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001B3ULL;
  return static_cast<size_t>(h ^ (h >> 32));
}

const std::array<uint32_t, 256>& byte_to_char() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    std::array<bool, 256> direct{};
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) t[b] = direct[b] ? static_cast<uint32_t>(b) : 256 + n++;
    return t;
  }();
  return table;
}

int char_to_byte(uint32_t c) {
  static const std::array<int16_t, 324> inverse = [] {
    std::array<int16_t, 324> inv;
    inv.fill(-1);
    const auto& t = byte_to_char();
    for (int b = 0; b < 256; ++b) inv[t[b]] = static_cast<int16_t>(b);
    return inv;
  }();
  return c < inverse.size() ? inverse[c] : -1;
}

BpeModel::BpeModel(std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, bool byte_fallback)
    : vocab_(std::move(vocab)), shards_(new Shard[kShards]) {
  init_bytes(byte_fallback);
  init_table(merges.size());
  std::string joined;
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    auto ia = vocab_.find(a);
    auto ib = vocab_.find(b);
    if (ia == vocab_.end() || ib == vocab_.end())
      fail(ErrorCode::kFormat,
           "tokenizer.json: merge '" + a + " " + b + "' uses a token not in the vocabulary");
    joined = a;
    joined += b;
    auto in = vocab_.find(joined);
    if (in == vocab_.end())
      fail(ErrorCode::kFormat,
           "tokenizer.json: merge '" + a + " " + b + "' makes a token not in the vocabulary");
    insert_merge(ia->second, ib->second, static_cast<uint32_t>(r), in->second);
  }
}

BpeModel::BpeModel(const std::vector<std::pair<std::string, int32_t>>& ranked_bytes)
    : shards_(new Shard[kShards]) {
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> raw;
  raw.reserve(ranked_bytes.size());
  std::vector<uint8_t> seen;
  for (const auto& [bytes, rank] : ranked_bytes) {
    if (rank < 0 || rank >= (1 << 24))  // a bound for the rank table: real vocabularies are < 2^18
      fail(ErrorCode::kFormat, "tiktoken.model: rank " + std::to_string(rank) + " is out of range");
    if (static_cast<size_t>(rank) >= seen.size()) seen.resize(static_cast<size_t>(rank) + 1, 0);
    if (seen[rank]++)
      fail(ErrorCode::kFormat, "tiktoken.model: rank " + std::to_string(rank) + " is used twice");
    if (!raw.emplace(bytes, rank).second)
      fail(ErrorCode::kFormat, "tiktoken.model: a token is listed twice (rank " + std::to_string(rank) + ")");
  }
  // The vocabulary in the ByteLevel alphabet, as a tokenizer.json converted from this file spells it.
  vocab_.reserve(raw.size());
  const auto& b2c = byte_to_char();
  for (const auto& [bytes, rank] : raw) {
    std::string s;
    for (unsigned char b : bytes) utf8_append(b2c[b], &s);
    vocab_.emplace(std::move(s), rank);
  }
  init_bytes(false);
  for (int b = 0; b < 256; ++b)
    if (byte_id_[b] < 0) {
      char buf[64];
      snprintf(buf, sizeof(buf), "tiktoken.model: byte 0x%02X has no rank", b);
      fail(ErrorCode::kFormat, buf);
    }
  // Pairs (a, b) with a, b and a + b all tokens: every split of every token, looked up by its halves.
  std::vector<std::array<int32_t, 3>> pairs;
  for (const auto& [bytes, rank] : raw) {
    const std::string_view t(bytes);
    for (size_t cut = 1; cut < t.size(); ++cut) {
      auto ia = raw.find(t.substr(0, cut));
      if (ia == raw.end()) continue;
      auto ib = raw.find(t.substr(cut));
      if (ib != raw.end()) pairs.push_back({ia->second, ib->second, rank});
    }
  }
  init_table(pairs.size());
  for (const auto& [a, b, rank] : pairs) insert_merge(a, b, static_cast<uint32_t>(rank), rank);
}

void BpeModel::init_bytes(bool byte_fallback) {
  for (const auto& [tok, id] : vocab_) max_id_ = std::max(max_id_, id);
  const auto& b2c = byte_to_char();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    utf8_append(b2c[b], &s);
    auto it = vocab_.find(s);
    byte_id_[b] = it == vocab_.end() ? -1 : it->second;
    byte_fallback_id_[b] = -1;
    if (byte_fallback) {
      char buf[8];
      snprintf(buf, sizeof(buf), "<0x%02X>", b);
      auto f = vocab_.find(std::string_view(buf));
      if (f != vocab_.end()) byte_fallback_id_[b] = f->second;
    }
  }
}

void BpeModel::init_table(size_t merges) {
  size_t cap = 16;
  while (cap < merges * 2 + 16) cap <<= 1;
  table_.assign(cap, MergeSlot{kEmpty, 0, 0});
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
}

BpeModel::~BpeModel() = default;

void BpeModel::insert_merge(int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
  const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  size_t i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_);
  for (;;) {
    MergeSlot& s = table_[i];
    if (s.key == kEmpty || s.key == key) {  // a later duplicate overwrites (HashMap collect semantics)
      s = MergeSlot{key, rank, new_id};
      return;
    }
    i = (i + 1) & mask_;
  }
}

void BpeModel::initial_symbols(std::string_view bytes, std::vector<int32_t>* syms) const {
  syms->clear();
  for (unsigned char b : bytes) {
    int32_t id = byte_id_[b];
    if (id < 0) id = byte_fallback_id_[b];
    if (id >= 0) syms->push_back(id);  // no unk token: an unknown character is dropped, as HF does
  }
}

// Repeatedly merges the pair of lowest (rank, position): O(n) per merge, for short words.
void BpeModel::merge_small(std::vector<int32_t>* syms) const {
  auto& s = *syms;
  size_t n = s.size();
  if (n < 2) return;
  constexpr uint32_t kNone = ~0u;
  // ranks[i], ids[i]: the merge of (s[i], s[i+1]).
  uint32_t ranks[64];
  int32_t ids[64];
  for (size_t i = 0; i + 1 < n; ++i)
    if (!lookup(s[i], s[i + 1], &ranks[i], &ids[i])) ranks[i] = kNone;
  for (;;) {
    uint32_t best = kNone;
    size_t at = 0;
    for (size_t i = 0; i + 1 < n; ++i)
      if (ranks[i] < best) {
        best = ranks[i];
        at = i;
      }
    if (best == kNone) break;
    s[at] = ids[at];
    for (size_t i = at + 1; i + 1 < n; ++i) s[i] = s[i + 1];
    for (size_t i = at + 1; i + 2 < n; ++i) {
      ranks[i] = ranks[i + 1];
      ids[i] = ids[i + 1];
    }
    --n;
    if (at > 0 && !lookup(s[at - 1], s[at], &ranks[at - 1], &ids[at - 1])) ranks[at - 1] = kNone;
    if (at + 1 < n && !lookup(s[at], s[at + 1], &ranks[at], &ids[at])) ranks[at] = kNone;
  }
  s.resize(n);
}

// HF's Word::merge_all: a priority queue of (rank, position) with lazy invalidation.
void BpeModel::merge_heap(std::vector<int32_t>* syms) const {
  auto& s = *syms;
  const size_t n = s.size();
  if (n < 2) return;
  struct Entry {
    uint32_t rank;
    uint32_t pos;
    int32_t new_id;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<int64_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int64_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int64_t>(i + 1) : -1;
  }
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> q;
  for (size_t i = 0; i + 1 < n; ++i) {
    uint32_t r;
    int32_t id;
    if (lookup(s[i], s[i + 1], &r, &id)) q.push(Entry{r, static_cast<uint32_t>(i), id});
  }
  while (!q.empty()) {
    const Entry top = q.top();
    q.pop();
    const size_t p = top.pos;
    if (!alive[p] || next[p] < 0) continue;
    const size_t nx = static_cast<size_t>(next[p]);
    uint32_t r;
    int32_t id;
    if (!lookup(s[p], s[nx], &r, &id) || id != top.new_id) continue;
    s[p] = top.new_id;
    alive[nx] = false;
    next[p] = next[nx];
    if (next[nx] >= 0) prev[static_cast<size_t>(next[nx])] = static_cast<int64_t>(p);
    if (prev[p] >= 0) {
      const size_t pv = static_cast<size_t>(prev[p]);
      if (lookup(s[pv], s[p], &r, &id)) q.push(Entry{r, static_cast<uint32_t>(pv), id});
    }
    if (next[p] >= 0) {
      if (lookup(s[p], s[static_cast<size_t>(next[p])], &r, &id))
        q.push(Entry{r, static_cast<uint32_t>(p), id});
    }
  }
  size_t w = 0;
  for (size_t i = 0; i < n; ++i)
    if (alive[i]) s[w++] = s[i];
  s.resize(w);
}

void BpeModel::encode_word_uncached(std::string_view bytes, std::vector<int32_t>* out) const {
  thread_local std::vector<int32_t> syms;
  initial_symbols(bytes, &syms);
  if (syms.size() <= 64) {
    merge_small(&syms);
  } else {
    merge_heap(&syms);
  }
  out->insert(out->end(), syms.begin(), syms.end());
}

void BpeModel::encode_word(std::string_view bytes, std::vector<int32_t>* out) const {
  if (bytes.size() == 1) {
    const unsigned char b = static_cast<unsigned char>(bytes[0]);
    const int32_t id = byte_id_[b] >= 0 ? byte_id_[b] : byte_fallback_id_[b];
    if (id >= 0) out->push_back(id);
    return;
  }
  if (bytes.size() >= kMaxCachedLen) {
    encode_word_uncached(bytes, out);
    return;
  }
  const size_t h = StringHash{}(bytes);
  Shard& sh = shards_[h % kShards];
  {
    std::lock_guard<std::mutex> lock(sh.mu);
    auto it = sh.map.find(bytes);
    if (it != sh.map.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out->size();
  encode_word_uncached(bytes, out);
  std::lock_guard<std::mutex> lock(sh.mu);
  if (sh.map.size() < kShardCapacity)
    sh.map.emplace(std::string(bytes), std::vector<int32_t>(out->begin() + before, out->end()));
}

}  // namespace moert::tok
