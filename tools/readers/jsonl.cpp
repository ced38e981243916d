#include "jsonl.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "byte_stream.h"
#include "input_error.h"
#include "tokenizer/utf8.h"

namespace mousse::tok {

namespace {

class JsonlReader : public DocReader {
 public:
  JsonlReader(const std::string& path, const ReaderOptions&) : path_(path), stream_(open_byte_stream(path)) {}

  bool read(DocBatch& batch, size_t max_bytes) override {
    batch.kind = DocBatch::Kind::kJsonLine;
    batch.file = path_;
    bool any = false;
    while (batch.bytes < max_bytes) {
      // find the next line in buf_[start_, end)
      const char* base = buf_.data();
      const char* nl = static_cast<const char*>(std::memchr(base + start_, '\n', buf_.size() - start_));
      if (!nl) {
        if (eof_) {
          if (start_ < buf_.size()) {
            any |= emit(batch, std::string_view(base + start_, buf_.size() - start_));
            start_ = buf_.size();
          }
          break;
        }
        refill();
        continue;
      }
      size_t len = size_t(nl - (base + start_));
      any |= emit(batch, std::string_view(base + start_, len));
      start_ += len + 1;
    }
    return any;
  }
  uint64_t consumed() const override { return stream_->consumed(); }
  uint64_t total() const override { return stream_->total(); }

 private:
  bool emit(DocBatch& batch, std::string_view line) {
    ++lineno_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool blank = true;
    for (char c : line)
      if (c != ' ' && c != '\t' && c != '\r') { blank = false; break; }
    if (blank) return false;
    batch.items.emplace_back(line);
    batch.where.push_back(lineno_);
    batch.bytes += line.size();
    return true;
  }
  void refill() {
    // keep the partial line, read more after it
    buf_.erase(0, start_);
    start_ = 0;
    size_t old = buf_.size();
    size_t want = std::max<size_t>(1 << 20, old);
    buf_.resize(old + want);
    size_t got = stream_->read(&buf_[old], want);
    buf_.resize(old + got);
    if (got == 0) eof_ = true;
  }

  std::string path_;
  std::unique_ptr<ByteStream> stream_;
  std::string buf_;
  size_t start_ = 0;
  bool eof_ = false;
  uint64_t lineno_ = 0;
};

}  // namespace

namespace {

// A fast, allocation-light JSON scanner that validates one line and extracts one top-level string field
// with Python's json.loads semantics (the last duplicate key wins; NaN/Infinity accepted; a lone
// surrogate escape becomes U+FFFD, which is what tiktoken does with a str holding one). Anything it
// rejects goes to nlohmann::json for the error message.
struct Scanner {
  const char* p;
  const char* e;
  void ws() {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(uint32_t* v) {
    if (e - p < 4) return false;
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(p[i]);
      if (h < 0) return false;
      r = (r << 4) | uint32_t(h);
    }
    p += 4;
    *v = r;
    return true;
  }
  // p at the opening quote; appends the decoded string to out (when non-null).
  bool string(std::string* out) {
    ++p;
    while (true) {
      const char* start = p;
      while (p < e && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) ++p;
      if (out) out->append(start, size_t(p - start));
      if (p >= e || (unsigned char)*p < 0x20) return false;
      if (*p == '"') {
        ++p;
        return true;
      }
      ++p;  // backslash
      if (p >= e) return false;
      char c = *p++;
      char lit = 0;
      switch (c) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            const char* save = p;
            p += 2;
            uint32_t lo;
            if (!hex4(&lo)) return false;
            if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else p = save;  // lone high surrogate; the next escape is read on its own
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
          if (out) utf8_append(*out, cp);
          continue;
        }
        default:
          return false;
      }
      if (out) out->push_back(lit);
    }
  }
  bool lit(const char* w) {
    size_t n = std::strlen(w);
    if (size_t(e - p) < n || std::memcmp(p, w, n) != 0) return false;
    p += n;
    return true;
  }
  bool number() {
    if (p < e && *p == '-') {
      ++p;
      if (p < e && *p == 'I') return lit("Infinity");
    }
    if (p >= e) return false;
    if (*p == '0') ++p;
    else if (*p >= '1' && *p <= '9') while (p < e && *p >= '0' && *p <= '9') ++p;
    else return false;
    if (p < e && *p == '.') {
      ++p;
      if (p >= e || *p < '0' || *p > '9') return false;
      while (p < e && *p >= '0' && *p <= '9') ++p;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
      ++p;
      if (p < e && (*p == '+' || *p == '-')) ++p;
      if (p >= e || *p < '0' || *p > '9') return false;
      while (p < e && *p >= '0' && *p <= '9') ++p;
    }
    return true;
  }
  bool value(int depth) {
    if (depth > 500 || p >= e) return false;
    switch (*p) {
      case '"': return string(nullptr);
      case '{': {
        ++p;
        ws();
        if (p < e && *p == '}') { ++p; return true; }
        while (true) {
          ws();
          if (p >= e || *p != '"' || !string(nullptr)) return false;
          ws();
          if (p >= e || *p != ':') return false;
          ++p;
          ws();
          if (!value(depth + 1)) return false;
          ws();
          if (p < e && *p == ',') { ++p; continue; }
          if (p < e && *p == '}') { ++p; return true; }
          return false;
        }
      }
      case '[': {
        ++p;
        ws();
        if (p < e && *p == ']') { ++p; return true; }
        while (true) {
          ws();
          if (!value(depth + 1)) return false;
          ws();
          if (p < e && *p == ',') { ++p; continue; }
          if (p < e && *p == ']') { ++p; return true; }
          return false;
        }
      }
      case 't': return lit("true");
      case 'f': return lit("false");
      case 'n': return lit("null");
      case 'N': return lit("NaN");
      case 'I': return lit("Infinity");
      default: return number();
    }
  }
};

// 1: found a string, 0: field missing, -1: field present but not a string, -2: not a JSON object, -3: invalid
int fast_extract(std::string_view line, const std::string& field, std::string& out) {
  Scanner s{line.data(), line.data() + line.size()};
  s.ws();
  if (s.p >= s.e || *s.p != '{') {
    Scanner t = s;
    return (t.value(0) && (t.ws(), t.p == t.e)) ? -2 : -3;
  }
  ++s.p;
  int state = 0;
  std::string key;
  s.ws();
  if (s.p < s.e && *s.p == '}') {
    ++s.p;
  } else {
    while (true) {
      s.ws();
      if (s.p >= s.e || *s.p != '"') return -3;
      key.clear();
      if (!s.string(&key)) return -3;
      s.ws();
      if (s.p >= s.e || *s.p != ':') return -3;
      ++s.p;
      s.ws();
      if (key == field) {
        if (s.p < s.e && *s.p == '"') {
          out.clear();
          if (!s.string(&out)) return -3;
          state = 1;
        } else {
          if (!s.value(1)) return -3;
          state = -1;
        }
      } else if (!s.value(1)) {
        return -3;
      }
      s.ws();
      if (s.p < s.e && *s.p == ',') { ++s.p; continue; }
      if (s.p < s.e && *s.p == '}') { ++s.p; break; }
      return -3;
    }
  }
  s.ws();
  if (s.p != s.e) return -3;
  return state;
}

}  // namespace

void parse_json_document(std::string_view line, const std::string& field, const std::string& file,
                         uint64_t lineno, std::string& text_out) {
  std::string scratch;
  std::string_view clean = utf8_sanitize(line, scratch);
  int r = fast_extract(clean, field, text_out);
  if (r == 1) return;
  if (r == 0) throw InputError(file, "line " + std::to_string(lineno), "no \"" + field + "\" field");
  if (r == -1) throw InputError(file, "line " + std::to_string(lineno), "\"" + field + "\" is not a string");
  if (r == -2) throw InputError(file, "line " + std::to_string(lineno), "expected a JSON object");
  // Invalid JSON: let nlohmann::json describe the problem.
  try {
    nlohmann::json j = nlohmann::json::parse(clean.begin(), clean.end());
    (void)j;
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(file, "line " + std::to_string(lineno) + ", byte " + std::to_string(e.byte),
                     std::string("invalid JSON: ") + e.what());
  }
  throw InputError(file, "line " + std::to_string(lineno), "invalid JSON");
}

std::unique_ptr<DocReader> open_jsonl(const std::string& path, const ReaderOptions& opt) {
  return std::make_unique<JsonlReader>(path, opt);
}

}  // namespace mousse::tok
