#include "pretokenize.h"

namespace mousse::tok {

namespace {
#include "unicode_tables.inc"

struct AsciiTable {
  uint8_t cls[128];
  AsciiTable() {
    for (int c = 0; c < 128; ++c) cls[c] = kUnicodeStage2[kUnicodeStage1[0]][c];
  }
};
const AsciiTable kAscii;

inline CharClass class_at(const unsigned char* p, int* len) {
  if (p[0] < 0x80) {
    *len = 1;
    return CharClass(kAscii.cls[p[0]]);
  }
  uint32_t cp = utf8_decode_valid(p, len);
  return CharClass(kUnicodeStage2[kUnicodeStage1[cp >> 8]][cp & 0xFF]);
}
}  // namespace

CharClass char_class(uint32_t cp) {
  if (cp >= 0x110000) return kOther;
  return CharClass(kUnicodeStage2[kUnicodeStage1[cp >> 8]][cp & 0xFF]);
}

size_t Pretokenizer::run_end(size_t i, CharClass k) const {
  while (i < n_) {
    int len;
    if (class_at(p_ + i, &len) != k) break;
    i += len;
  }
  return i;
}

size_t Pretokenizer::piece_end(size_t i) const {
  const unsigned char* p = p_;
  unsigned c = p[i];
  // 1. contractions, case-sensitive: 's 'd 'm 't 'll 've 're
  if (c == '\'' && i + 1 < n_) {
    unsigned c1 = p[i + 1];
    if (c1 == 's' || c1 == 'd' || c1 == 'm' || c1 == 't') return i + 2;
    if (i + 2 < n_) {
      unsigned c2 = p[i + 2];
      if ((c1 == 'l' && c2 == 'l') || (c1 == 'v' && c2 == 'e') || (c1 == 'r' && c2 == 'e')) return i + 3;
    }
  }
  int len;
  CharClass k = class_at(p + i, &len);
  // 2-4. an optional ASCII space, then a run of letters, numbers or "other"
  if (c == ' ' && i + 1 < n_) {
    int len2;
    CharClass k2 = class_at(p + i + 1, &len2);
    if (k2 != kSpace) return run_end(i + 1 + len2, k2);
  }
  if (k != kSpace) return run_end(i + len, k);
  // 5. \s+(?!\S): a white-space run; when followed by a non-space, all but its last character.
  size_t j = i + len, last = i;
  while (j < n_) {
    int l2;
    if (class_at(p + j, &l2) != kSpace) break;
    last = j;
    j += l2;
  }
  if (j >= n_) return j;
  if (last > i) return last;
  // 6. \s+ : a single white-space character before a non-space
  return j;
}

}  // namespace mousse::tok
