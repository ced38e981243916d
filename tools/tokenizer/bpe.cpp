#include "bpe.h"

#include <cstring>
#include <queue>
#include <stdexcept>

namespace mousse::tok {

uint64_t BpeCore::hash_bytes(std::string_view s) {
  if (s.size() <= 8) {
    uint64_t w = 0;
    std::memcpy(&w, s.data(), s.size());
    return mix(w ^ (uint64_t(s.size()) << 59) ^ 0x9E3779B97F4A7C15ULL);
  }
  // multiply-xor over 8-byte words, then a final mix
  uint64_t h = 0xcbf29ce484222325ULL ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  uint64_t w = 0;
  std::memcpy(&w, s.data() + i, s.size() - i);
  h = (h ^ w) * 0x100000001b3ULL;
  return mix(h);
}

BpeCore::BpeCore(const Gpt2Vocab& vocab) {
  const uint32_t n = 50256;  // ordinary tokens only
  std::vector<std::string> tokens_(vocab.tokens.begin(), vocab.tokens.begin() + n);
  offsets_.push_back(0);
  for (uint32_t id = 0; id < n; ++id) {
    pool_ += tokens_[id];
    offsets_.push_back(uint32_t(pool_.size()));
  }
  // Token table: open addressing; ids verified by comparing bytes.
  size_t cap = 1;
  while (cap < n * 2) cap <<= 1;
  tok_slots_.assign(cap, TokSlot{0, kNone});
  tok_mask_ = cap - 1;
  for (uint32_t id = 0; id < n; ++id) {
    uint64_t h = hash_bytes(tokens_[id]);
    size_t s = h & tok_mask_;
    while (tok_slots_[s].id != kNone) s = (s + 1) & tok_mask_;
    tok_slots_[s] = TokSlot{tag_of(h, tokens_[id].size()), id};
  }
  for (int b = 0; b < 256; ++b) {
    char c = char(b);
    byte_tokens_[b] = lookup(std::string_view(&c, 1));
    if (byte_tokens_[b] == kNone) throw std::runtime_error("GPT-2 vocabulary lacks a single-byte token");
  }
  // Pair table: every split of every token into two tokens. All parts in tiktoken's merge loop are
  // tokens, so "rank of the concatenation" equals a lookup in this table.
  std::vector<std::pair<uint64_t, uint32_t>> pairs;
  pairs.reserve(400000);
  for (uint32_t id = 0; id < n; ++id) {
    const std::string& t = tokens_[id];
    for (size_t k = 1; k < t.size(); ++k) {
      uint32_t a = lookup(std::string_view(t).substr(0, k)), b = lookup(std::string_view(t).substr(k));
      if (a != kNone && b != kNone) pairs.emplace_back((uint64_t(a) << 32) | b, id);
    }
  }
  cap = 1;
  while (cap < pairs.size() * 2) cap <<= 1;
  pair_slots_.assign(cap, PairSlot{kEmptyKey, kNone});
  pair_mask_ = cap - 1;
  for (auto& [key, id] : pairs) {
    size_t h = mix(key) & pair_mask_;
    while (pair_slots_[h].key != kEmptyKey) h = (h + 1) & pair_mask_;
    pair_slots_[h] = PairSlot{key, id};
  }
}

uint32_t BpeCore::lookup(std::string_view bytes) const {
  uint64_t h = hash_bytes(bytes);
  size_t s = h & tok_mask_;
  const uint32_t tag = tag_of(h, bytes.size());
  while (true) {
    const TokSlot& t = tok_slots_[s];
    if (t.id == kNone) return kNone;
    if (t.tag == tag) {
      uint32_t b = offsets_[t.id], e = offsets_[t.id + 1];
      if (e - b == bytes.size()) {
        const char* a = pool_.data() + b;
        bool eq = true;
        if (bytes.size() <= 16) {
          for (size_t k = 0; k < bytes.size(); ++k) eq &= (a[k] == bytes[k]);
        } else {
          eq = std::memcmp(a, bytes.data(), bytes.size()) == 0;
        }
        if (eq) return t.id;
      }
    }
    s = (s + 1) & tok_mask_;
  }
}

void BpeCore::merge_small(std::string_view piece, std::vector<uint32_t>& out) const {
  // O(n^2) on a small stack array, exactly tiktoken's loop (ranks are ids for GPT-2).
  constexpr size_t kMax = 128;
  uint32_t ids[kMax], ranks[kMax];
  size_t m = piece.size();
  for (size_t k = 0; k < m; ++k) ids[k] = byte_tokens_[uint8_t(piece[k])];
  for (size_t k = 0; k + 1 < m; ++k) ranks[k] = pair(ids[k], ids[k + 1]);
  while (m > 1) {
    uint32_t best = kNone;
    size_t bi = 0;
    for (size_t k = 0; k + 1 < m; ++k)
      if (ranks[k] < best) { best = ranks[k]; bi = k; }
    if (best == kNone) break;
    ids[bi] = best;
    std::memmove(ids + bi + 1, ids + bi + 2, (m - bi - 2) * sizeof(uint32_t));
    std::memmove(ranks + bi + 1, ranks + bi + 2, (m - bi - 2) * sizeof(uint32_t));
    --m;
    if (bi > 0) ranks[bi - 1] = pair(ids[bi - 1], ids[bi]);
    if (bi + 1 < m) ranks[bi] = pair(ids[bi], ids[bi + 1]);
  }
  out.insert(out.end(), ids, ids + m);
}

void BpeCore::merge_large(std::string_view piece, std::vector<uint32_t>& out) const {
  // Same merge order with a heap keyed by (rank, position) and a linked list; stale heap entries
  // are skipped. Picking the minimum (rank, leftmost position) is what tiktoken's scan does.
  const size_t m = piece.size();
  std::vector<uint32_t> ids(m), next(m), prev(m);
  std::vector<uint8_t> alive(m, 1);
  for (size_t k = 0; k < m; ++k) {
    ids[k] = byte_tokens_[uint8_t(piece[k])];
    next[k] = uint32_t(k + 1);
    prev[k] = uint32_t(k) - 1;  // wraps for k = 0, never read
  }
  using Entry = std::pair<uint64_t, uint32_t>;  // (rank << 32 | left position, merged id)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](uint32_t left) {
    uint32_t right = next[left];
    if (right >= m) return;
    uint32_t r = pair(ids[left], ids[right]);
    if (r != kNone) heap.emplace((uint64_t(r) << 32) | left, r);
  };
  for (uint32_t k = 0; k + 1 < m; ++k) push(k);
  while (!heap.empty()) {
    auto [key, r] = heap.top();
    heap.pop();
    uint32_t left = uint32_t(key & 0xFFFFFFFFu);
    if (!alive[left]) continue;
    uint32_t right = next[left];
    if (right >= m || pair(ids[left], ids[right]) != r) continue;  // stale
    ids[left] = r;
    alive[right] = 0;
    next[left] = next[right];
    if (next[right] < m) prev[next[right]] = left;
    if (left > 0) push(prev[left]);
    push(left);
  }
  for (uint32_t k = 0; k < m; k = next[k]) out.push_back(ids[k]);
}

void BpeCore::encode_piece(std::string_view piece, std::vector<uint32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_tokens_[uint8_t(piece[0])]);
    return;
  }
  uint32_t id = lookup(piece);
  if (id != kNone) {
    out.push_back(id);
    return;
  }
  if (piece.size() <= 128) merge_small(piece, out);
  else merge_large(piece, out);
}

}  // namespace mousse::tok
