// Byte-level BPE with tiktoken's merge rule: repeatedly merge the adjacent pair whose concatenation
// has the lowest rank, leftmost first; a piece that is itself a token is emitted directly.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gpt2_vocab.h"

namespace mousse::tok {

class BpeCore {
 public:
  explicit BpeCore(const Gpt2Vocab& vocab);
  static constexpr uint32_t kNone = 0xFFFFFFFFu;

  // Token id of exactly these bytes, or kNone (special tokens are not included).
  uint32_t lookup(std::string_view bytes) const;
  // Id of the token that is the concatenation of tokens a and b, or kNone.
  uint32_t pair(uint32_t a, uint32_t b) const {
    uint64_t key = (uint64_t(a) << 32) | b;
    size_t h = mix(key) & pair_mask_;
    while (true) {
      const PairSlot& s = pair_slots_[h];
      if (s.key == key) return s.value;
      if (s.key == kEmptyKey) return kNone;
      h = (h + 1) & pair_mask_;
    }
  }
  // Appends the tokens of one piece (raw bytes, any length >= 1).
  void encode_piece(std::string_view piece, std::vector<uint32_t>& out) const;
  // The merge loop alone (no whole-piece lookup); exposed for tests.
  void merge_small(std::string_view piece, std::vector<uint32_t>& out) const;
  void merge_large(std::string_view piece, std::vector<uint32_t>& out) const;
  uint32_t byte_token(uint8_t b) const { return byte_tokens_[b]; }

 private:
  static constexpr uint64_t kEmptyKey = ~uint64_t(0);
  static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
  }
  static uint64_t hash_bytes(std::string_view s);
  struct PairSlot {
    uint64_t key;
    uint32_t value;
  };
  std::vector<PairSlot> pair_slots_;
  size_t pair_mask_ = 0;
  // Token table: 8-byte slots {tag, id} (tag = high hash bits and the length), the bytes of all tokens
  // in one pool; compact so that lookups mostly hit the cache.
  struct TokSlot {
    uint32_t tag;
    uint32_t id;  // kNone when empty
  };
  static uint32_t tag_of(uint64_t h, size_t len) { return (uint32_t(h >> 40) << 8) | uint32_t(len < 255 ? len : 255); }
  std::vector<TokSlot> tok_slots_;
  size_t tok_mask_ = 0;
  std::string pool_;
  std::vector<uint32_t> offsets_;  // token id -> [offsets_[id], offsets_[id + 1]) in pool_
  uint32_t byte_tokens_[256];
};

}  // namespace mousse::tok
