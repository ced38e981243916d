#include "gpt2_tokenizer.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <sys/stat.h>

#include "bpe.h"
#include "gpt2_vocab.h"
#include "pretokenize.h"
#include "utf8.h"

namespace mousse::tok {

// Direct-mapped cache of pieces of 2..24 bytes that need the merge loop, with up to 8 tokens.
struct EncodeCache::Impl {
  static constexpr size_t kSlots = 1 << 14;
  static constexpr size_t kMaxPiece = 24, kMaxToks = 8;
  struct Slot {
    uint8_t len = 0, ntok = 0;
    char bytes[kMaxPiece];
    uint32_t toks[kMaxToks];
  };
  std::vector<Slot> slots{kSlots};
  // Small direct-mapped memo of pieces of <= 8 bytes that are single tokens (frequent words): the key is
  // the bytes packed in a uint64 plus the length; 64 KiB, so it stays in cache.
  static constexpr size_t kSmall = 1 << 12;
  struct Small {
    uint64_t key = 0;
    uint32_t len = 0, id = 0;
  };
  std::vector<Small> small{kSmall};
  static size_t small_hash(uint64_t w, size_t len) {
    return size_t(((w ^ (uint64_t(len) << 56)) * 0x9E3779B97F4A7C15ULL) >> 52);
  }
  static size_t hash(std::string_view s) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ s.size();
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
    return size_t(h ^ (h >> 32)) & (kSlots - 1);
  }
};
EncodeCache::EncodeCache() : impl_(new Impl) {}
EncodeCache::~EncodeCache() = default;

Gpt2Tokenizer::Gpt2Tokenizer(const std::string& dir) {
  Gpt2Vocab v = load_gpt2_vocab(dir);
  core_ = std::make_unique<BpeCore>(v);
  tokens_ = std::move(v.tokens);
}
Gpt2Tokenizer::~Gpt2Tokenizer() = default;

namespace {
bool is_file(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
// The vocabulary files `dir` lacks ("" when it holds both), e.g. "vocab.bpe".
std::string missing_vocab_files(const std::string& dir) {
  std::string missing;
  for (const char* f : {"encoder.json", "vocab.bpe"})
    if (!is_file(dir + "/" + f)) missing += std::string(missing.empty() ? "" : " and ") + f;
  return missing;
}
constexpr const char* kHowToGet =
    "scripts/get-gpt2-vocab.sh downloads encoder.json and vocab.bpe into data/gpt2; or pass "
    "--vocab DIR, or set MOUSSE_GPT2_DIR=DIR";
}  // namespace

std::string Gpt2Tokenizer::find_vocab_dir(const std::string& explicit_dir) {
  auto checked = [](const std::string& dir, const std::string& what) {
    if (!is_dir(dir))
      throw std::runtime_error("GPT-2 vocabulary: " + what + " is not a directory. " + kHowToGet);
    const std::string missing = missing_vocab_files(dir);
    if (!missing.empty())
      throw std::runtime_error("GPT-2 vocabulary: " + what + " lacks " + missing + ". " + kHowToGet);
    return dir;
  };
  if (!explicit_dir.empty()) return checked(explicit_dir, "--vocab " + explicit_dir);
  if (const char* env = std::getenv("MOUSSE_GPT2_DIR"); env && *env)
    return checked(env, std::string("MOUSSE_GPT2_DIR=") + env);
  const std::string user_default = "data/gpt2";
  if (is_dir(user_default)) return checked(user_default, user_default + " (in the working directory)");
  // The shared test data next to the repository (from its root, or from build/).
  for (const char* d : {"../shared/data/gpt2", "../../shared/data/gpt2"})
    if (missing_vocab_files(d).empty()) return d;
  throw std::runtime_error(std::string("GPT-2 vocabulary not found: no --vocab, no MOUSSE_GPT2_DIR, "
                                       "no data/gpt2 in the working directory. ") + kHowToGet);
}

std::vector<uint32_t> Gpt2Tokenizer::encode_ordinary(std::string_view text) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 3 + 8);
  encode_ordinary(text, out, nullptr);
  return out;
}

void Gpt2Tokenizer::encode_ordinary(std::string_view text, std::vector<uint32_t>& out, EncodeCache* cache) const {
  std::string scratch;
  encode_ordinary_valid(utf8_sanitize(text, scratch), out, cache);
}

void Gpt2Tokenizer::encode_ordinary_valid(std::string_view text, std::vector<uint32_t>& out, EncodeCache* cache) const {
  const BpeCore& core = *core_;
  Pretokenizer pt(text);
  size_t start, len;
  EncodeCache::Impl* c = cache ? cache->impl_.get() : nullptr;
  while (pt.next(&start, &len)) {
    std::string_view piece = text.substr(start, len);
    if (len == 1) {
      out.push_back(core.byte_token(uint8_t(piece[0])));
      continue;
    }
    EncodeCache::Impl::Small* sm = nullptr;
    uint64_t w = 0;
    if (c && len <= 8) {
      std::memcpy(&w, piece.data(), len);
      sm = &c->small[EncodeCache::Impl::small_hash(w, len)];
      if (sm->len == len && sm->key == w) {
        out.push_back(sm->id);
        continue;
      }
    }
    uint32_t id = core.lookup(piece);
    if (id != BpeCore::kNone) {
      if (sm) {
        sm->key = w;
        sm->len = uint32_t(len);
        sm->id = id;
      }
      out.push_back(id);
      continue;
    }
    if (c && len <= EncodeCache::Impl::kMaxPiece) {
      auto& slot = c->slots[EncodeCache::Impl::hash(piece)];
      if (slot.len == len && std::memcmp(slot.bytes, piece.data(), len) == 0) {
        out.insert(out.end(), slot.toks, slot.toks + slot.ntok);
        continue;
      }
      size_t before = out.size();
      core.merge_small(piece, out);
      size_t nt = out.size() - before;
      if (nt <= EncodeCache::Impl::kMaxToks) {
        slot.len = uint8_t(len);
        slot.ntok = uint8_t(nt);
        std::memcpy(slot.bytes, piece.data(), len);
        std::memcpy(slot.toks, out.data() + before, nt * sizeof(uint32_t));
      }
      continue;
    }
    if (len <= 128) core.merge_small(piece, out);
    else core.merge_large(piece, out);
  }
}

const std::string& Gpt2Tokenizer::token_bytes(uint32_t id) const {
  if (id >= tokens_.size()) throw std::out_of_range("GPT-2 token id " + std::to_string(id) + " out of range");
  return tokens_[id];
}

std::string Gpt2Tokenizer::decode(const uint32_t* tokens, size_t n) const {
  std::string out;
  out.reserve(n * 4);
  for (size_t i = 0; i < n; ++i) out += token_bytes(tokens[i]);
  return out;
}

std::string Gpt2Tokenizer::decode(const uint16_t* tokens, size_t n) const {
  std::string out;
  out.reserve(n * 4);
  for (size_t i = 0; i < n; ++i) out += token_bytes(tokens[i]);
  return out;
}

std::string Gpt2Tokenizer::decode_text(const std::vector<uint32_t>& tokens) const {
  std::string raw = decode(tokens), clean;
  return std::string(utf8_sanitize(raw, clean));
}

}  // namespace mousse::tok
