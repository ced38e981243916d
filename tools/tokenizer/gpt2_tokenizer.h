// GPT-2 BPE tokenizer (encoder and decoder), exact to tiktoken's "gpt2" encoding.
//
//   mousse::tok::Gpt2Tokenizer tok(Gpt2Tokenizer::find_vocab_dir(""));
//   std::vector<uint32_t> ids = tok.encode_ordinary("Hello world");
//   std::string text = tok.decode(ids);
//
// encode_ordinary treats "<|endoftext|>" in the text as ordinary text (tiktoken's encode_ordinary).
// Invalid UTF-8 in the input is replaced first, exactly like Python's
// bytes.decode("utf-8", errors="replace") (one U+FFFD per maximal invalid subpart), then encoded.
// A Gpt2Tokenizer is immutable after construction and may be shared between threads; pass one
// EncodeCache per thread for speed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mousse::tok {

class BpeCore;

// Per-thread memo of recently encoded pieces that are not single tokens. Not thread-safe.
class EncodeCache {
 public:
  EncodeCache();
  ~EncodeCache();
  EncodeCache(const EncodeCache&) = delete;
  EncodeCache& operator=(const EncodeCache&) = delete;

 private:
  friend class Gpt2Tokenizer;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Gpt2Tokenizer {
 public:
  static constexpr uint32_t kEot = 50256;  // <|endoftext|>
  static constexpr uint32_t kVocabSize = 50257;

  // Loads DIR/encoder.json and DIR/vocab.bpe. Throws std::runtime_error naming the file on error.
  explicit Gpt2Tokenizer(const std::string& dir);
  ~Gpt2Tokenizer();
  Gpt2Tokenizer(const Gpt2Tokenizer&) = delete;
  Gpt2Tokenizer& operator=(const Gpt2Tokenizer&) = delete;

  // The vocabulary directory, for every program that reads one (mousse sample, mousse-tokenize):
  // `explicit_dir` (--vocab) when non-empty, else $MOUSSE_GPT2_DIR when set, else data/gpt2
  // (relative to the working directory: where scripts/get-gpt2-vocab.sh puts the files), else,
  // for the tests, the shared test data ../shared/data/gpt2 or ../../shared/data/gpt2. A location
  // the user named (--vocab, $MOUSSE_GPT2_DIR) or data/gpt2 that exists but lacks a file is an
  // error naming it; so is finding none, with how to get the files (scripts/get-gpt2-vocab.sh).
  static std::string find_vocab_dir(const std::string& explicit_dir);
  // The --vocab option's help text, which states that order.
  static constexpr const char* kVocabOptionHelp =
      "GPT-2 vocabulary directory (encoder.json, vocab.bpe); default: $MOUSSE_GPT2_DIR, else "
      "data/gpt2 (scripts/get-gpt2-vocab.sh downloads it there)";

  std::vector<uint32_t> encode_ordinary(std::string_view text) const;
  // Appends the tokens of `text` to `out`; `cache` may be null.
  void encode_ordinary(std::string_view text, std::vector<uint32_t>& out, EncodeCache* cache = nullptr) const;
  // Same, for text already known to be valid UTF-8 (no check).
  void encode_ordinary_valid(std::string_view text, std::vector<uint32_t>& out, EncodeCache* cache = nullptr) const;

  // Concatenated bytes of the tokens (ids >= kVocabSize throw std::out_of_range). The bytes may be
  // invalid UTF-8 where a multi-byte character is split across a boundary of the sequence.
  std::string decode(const uint32_t* tokens, size_t n) const;
  std::string decode(const std::vector<uint32_t>& tokens) const { return decode(tokens.data(), tokens.size()); }
  std::string decode(const uint16_t* tokens, size_t n) const;
  // decode() followed by Python-style replacement of invalid UTF-8 (what tiktoken's decode does).
  std::string decode_text(const std::vector<uint32_t>& tokens) const;
  const std::string& token_bytes(uint32_t id) const;

  const BpeCore& core() const { return *core_; }

 private:
  std::unique_ptr<BpeCore> core_;
  std::vector<std::string> tokens_;
};

}  // namespace mousse::tok
