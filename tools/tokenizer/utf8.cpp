#include "utf8.h"

namespace mousse::tok {

namespace {
// Returns the length of the valid sequence at p (1..4), or 0 if invalid; *subpart receives the length
// of the maximal invalid subpart to replace when invalid (>= 1).
inline int seq_len(const unsigned char* p, size_t n, size_t* subpart) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  int need;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *subpart = 1;
    return 0;
  }
  size_t i = 1;
  for (int k = 0; k < need; ++k, ++i) {
    if (i >= n) { *subpart = i; return 0; }
    unsigned b = p[i];
    unsigned l = (k == 0) ? lo : 0x80, h = (k == 0) ? hi : 0xBF;
    if (b < l || b > h) { *subpart = i; return 0; }
  }
  return need + 1;
}
}  // namespace

size_t utf8_valid_prefix(std::string_view s) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    // fast ASCII skip, 8 bytes at a time
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    if (p[i] < 0x80) { ++i; continue; }
    size_t sub;
    int len = seq_len(p + i, n - i, &sub);
    if (len == 0) return i;
    i += len;
  }
  return n;
}

size_t utf8_replace_invalid(std::string_view s, std::string& out) {
  out.clear();
  out.reserve(s.size() + 16);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0, count = 0;
  while (i < n) {
    size_t sub = 0;
    int len = seq_len(p + i, n - i, &sub);
    if (len > 0) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      i += sub;
      ++count;
    }
  }
  return count;
}

std::string_view utf8_sanitize(std::string_view s, std::string& scratch, size_t* replaced) {
  if (utf8_valid_prefix(s) == s.size()) {
    if (replaced) *replaced = 0;
    return s;
  }
  size_t r = utf8_replace_invalid(s, scratch);
  if (replaced) *replaced = r;
  return scratch;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

}  // namespace mousse::tok
