// GPT-2 pre-tokenisation: splits text into the pieces of tiktoken's gpt2/r50k regex
//   '(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// as a hand-written scanner. The input must be valid UTF-8 (see utf8.h for cleaning).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mousse::tok {

enum CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

// Class of a Unicode scalar value (code points above U+10FFFF are kOther).
CharClass char_class(uint32_t cp);

// Decodes one code point of valid UTF-8 at p; *len receives its byte length.
inline uint32_t utf8_decode_valid(const unsigned char* p, int* len) {
  unsigned c = p[0];
  if (c < 0x80) { *len = 1; return c; }
  if (c < 0xE0) { *len = 2; return ((c & 0x1F) << 6) | (p[1] & 0x3F); }
  if (c < 0xF0) { *len = 3; return ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F); }
  *len = 4;
  return ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

// Iterates over the pieces of `text`: `while (pt.next(&start, &len)) ...`.
class Pretokenizer {
 public:
  explicit Pretokenizer(std::string_view text)
      : p_(reinterpret_cast<const unsigned char*>(text.data())), n_(text.size()) {}
  bool next(size_t* start, size_t* len) {
    if (pos_ >= n_) return false;
    size_t end = piece_end(pos_);
    *start = pos_;
    *len = end - pos_;
    pos_ = end;
    return true;
  }

 private:
  size_t piece_end(size_t i) const;
  size_t run_end(size_t i, CharClass k) const;  // end of the run of class k starting at i
  const unsigned char* p_;
  size_t n_;
  size_t pos_ = 0;
};

}  // namespace mousse::tok
