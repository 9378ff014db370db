// Byte-level BPE: merges by rank exactly as Hugging Face's Word::merge_all (lowest rank first, leftmost on
// ties), on the bytes of a pre-token (each byte is the vocabulary's ByteLevel character for it).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moert::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept;
};

class BpeModel {
 public:
  // vocab: token string (ByteLevel alphabet) -> id. merges: pairs of token strings in rank order.
  BpeModel(std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, bool byte_fallback);
  // tiktoken's BPE: ranked_bytes holds each token's raw bytes and rank, and the rank is the token's id.
  // Every adjacent pair whose concatenation is a token merges, at that token's rank, lowest first and
  // leftmost on ties: tiktoken's byte_pair_merge. Throws Error(kFormat) for a duplicate token or rank.
  explicit BpeModel(const std::vector<std::pair<std::string, int32_t>>& ranked_bytes);
  ~BpeModel();

  // Appends the ids of one pre-token, given as its raw bytes.
  void encode_word(std::string_view bytes, std::vector<int32_t>* out) const;
  // The same without the cache (for tests: compares the two merge strategies too).
  void encode_word_uncached(std::string_view bytes, std::vector<int32_t>* out) const;

  const std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>& vocab() const {
    return vocab_;
  }
  int32_t max_id() const { return max_id_; }

 private:
  struct MergeSlot {
    uint64_t key;  // (left << 32) | right, kEmpty when free
    uint32_t rank;
    int32_t new_id;
  };
  static constexpr uint64_t kEmpty = ~0ULL;

  // Returns false when (a, b) is not a merge.
  bool lookup(int32_t a, int32_t b, uint32_t* rank, int32_t* new_id) const {
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    size_t i = static_cast<size_t>(h >> shift_);
    for (;;) {
      const MergeSlot& s = table_[i];
      if (s.key == key) {
        *rank = s.rank;
        *new_id = s.new_id;
        return true;
      }
      if (s.key == kEmpty) return false;
      i = (i + 1) & mask_;
    }
  }
  void insert_merge(int32_t a, int32_t b, uint32_t rank, int32_t new_id);
  void merge_small(std::vector<int32_t>* syms) const;
  void merge_heap(std::vector<int32_t>* syms) const;
  void initial_symbols(std::string_view bytes, std::vector<int32_t>* syms) const;
  void init_bytes(bool byte_fallback);
  void init_table(size_t merges);

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<MergeSlot> table_;
  size_t mask_ = 0;
  int shift_ = 0;
  int32_t max_id_ = -1;
  std::array<int32_t, 256> byte_id_;           // ByteLevel character of each byte -> id (-1: absent)
  std::array<int32_t, 256> byte_fallback_id_;  // <0xXX> -> id (-1: absent or byte_fallback off)

  // Word cache, sharded, bounded (like HF's: words under 256 bytes, stops filling when full).
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  static constexpr size_t kShards = 32;
  static constexpr size_t kShardCapacity = 4096;
  static constexpr size_t kMaxCachedLen = 256;
  mutable std::unique_ptr<Shard[]> shards_;
};

// The GPT-2 byte <-> unicode character map of the ByteLevel pre-tokenizer/decoder.
const std::array<uint32_t, 256>& byte_to_char();
// -1 when c is not one of the 256 characters.
int char_to_byte(uint32_t c);

}  // namespace moert::tok
