#include "jsonl.h"

#include <cstdio>
#include <cstring>

#include "byte_stream.h"
#include "input_error.h"
#include "tokenizer/utf8.h"

namespace mousse::tok {

namespace {

class JsonlReader : public DocReader {
 public:
  JsonlReader(const std::string& path, const ReaderOptions& opt)
      : path_(path), max_line_(opt.max_document_bytes), stream_(open_byte_stream(path)) {}

  bool read(DocBatch& batch, size_t max_bytes) override {
    batch.kind = DocBatch::Kind::kJsonLine;
    batch.file = path_;
    if (!started_) skip_byte_order_mark();
    bool any = false;
    while (batch.bytes < max_bytes && batch.items.size() < kMaxBatchDocs) {
      // the next line in the unread window
      const char* base = win_.buf.data();
      const char* nl = static_cast<const char*>(std::memchr(base + win_.start, '\n', win_.buf.size() - win_.start));
      if (!nl) {
        if (win_.buf.size() - win_.start > max_line_)
          throw InputError(path_, "line " + std::to_string(lineno_ + 1),
                           "longer than " + std::to_string(max_line_) + " bytes without a newline (not JSON Lines?)");
        if (win_.eof) {
          if (win_.start < win_.buf.size()) {
            any |= emit(batch, std::string_view(base + win_.start, win_.buf.size() - win_.start));
            win_.start = win_.buf.size();
          }
          break;
        }
        win_.refill(*stream_);
        continue;
      }
      size_t len = size_t(nl - (base + win_.start));
      if (len > max_line_)
        throw InputError(path_, "line " + std::to_string(lineno_ + 1),
                         "longer than " + std::to_string(max_line_) + " bytes, more than one document may hold");
      any |= emit(batch, std::string_view(base + win_.start, len));
      win_.start += len + 1;
    }
    return any;
  }
  uint64_t consumed() const override { return stream_->consumed(); }
  uint64_t total() const override { return stream_->total(); }

 private:
  // A UTF-8 byte order mark at the start of the file is skipped, as Python's "utf-8-sig" codec
  // does (some editors write one); a UTF-16 or UTF-32 one means the file is not UTF-8 at all.
  void skip_byte_order_mark() {
    started_ = true;
    while (!win_.eof && win_.buf.size() < 4) win_.refill(*stream_);
    auto starts = [&](const char* m, size_t n) { return win_.buf.size() >= n && std::memcmp(win_.buf.data(), m, n) == 0; };
    if (starts("\xEF\xBB\xBF", 3)) {
      win_.start = 3;
    } else if (starts("\xFF\xFE", 2) || starts("\xFE\xFF", 2) || starts("\0\0\xFE\xFF", 4)) {
      throw InputError(path_, "byte offset 0",
                       "UTF-16 or UTF-32 byte order mark: JSON Lines must be UTF-8 (convert the file, e.g. with "
                       "iconv -f UTF-16 -t UTF-8)");
    }
  }
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

  std::string path_;
  uint64_t max_line_;
  std::unique_ptr<ByteStream> stream_;
  StreamWindow win_;
  bool started_ = false;
  uint64_t lineno_ = 0;
};

// Deeper nesting than this is an error (Python's json stops a little above 900 with a RecursionError).
constexpr int kMaxDepth = 500;

enum class Field { kString, kMissing, kNotString };

// A fast, allocation-light JSON scanner that validates one line and extracts one top-level string
// field with Python's json.loads semantics (the last duplicate key wins; NaN/Infinity accepted; a
// lone surrogate escape becomes U+FFFD, which is what tiktoken does with a str holding one; control
// characters inside strings are errors, as with strict=True). The field's bytes are copied as
// written: invalid UTF-8 is left to the caller, which replaces and counts it. On malformed input it
// records what went wrong and the byte where it did.
class LineParser {
 public:
  explicit LineParser(std::string_view line) : b_(line.data()), p_(b_), e_(b_ + line.size()) {}

  // Parses the line as one JSON object; copies `field` into out when it is a string. Returns false
  // on malformed JSON or a value that is not an object (error() and column() say why and where).
  bool object_field(const std::string& field, std::string& out, Field* status) {
    *status = Field::kMissing;
    ws();
    if (p_ >= e_ || *p_ != '{') return expected(p_, "a JSON object ('{')");
    ++p_;
    ws();
    if (p_ < e_ && *p_ == '}') {
      ++p_;
    } else {
      std::string key, scratch;
      while (true) {
        ws();
        if (p_ >= e_ || *p_ != '"') return expected(p_, "a string key");
        key.clear();
        if (!string(&key)) return false;
        ws();
        if (p_ >= e_ || *p_ != ':') return expected(p_, "':' after the key");
        ++p_;
        ws();
        // Python decodes the line (invalid bytes become U+FFFD) before it compares keys.
        if (utf8_sanitize(key, scratch) == field) {
          if (p_ < e_ && *p_ == '"') {
            out.clear();
            if (!string(&out)) return false;
            *status = Field::kString;
          } else {
            found_ = p_;
            if (!value(2)) return false;
            *status = Field::kNotString;
          }
        } else if (!value(2)) {
          return false;
        }
        ws();
        if (p_ < e_ && *p_ == ',') {
          ++p_;
          continue;
        }
        if (p_ < e_ && *p_ == '}') {
          ++p_;
          break;
        }
        return expected(p_, "',' or '}' after a value");
      }
    }
    ws();
    if (p_ != e_) return expected(p_, "the end of the line after the JSON object");
    return true;
  }
  const std::string& error() const { return error_; }
  size_t column() const { return size_t(error_at_ - b_) + 1; }  // 1-based, in bytes
  // Where the non-string value of the field starts (for the error message).
  std::string found_value() const { return describe(found_); }

 private:
  // "a NUL byte", "'x'", "byte 0xC3", "the end of the line"
  std::string describe(const char* at) const {
    if (at >= e_) return "the end of the line";
    unsigned char c = static_cast<unsigned char>(*at);
    if (c == 0) return "a NUL byte";
    if (e_ - at >= 3 && std::memcmp(at, "\xEF\xBB\xBF", 3) == 0) return "a UTF-8 byte order mark";
    char buf[16];
    if (c >= 0x20 && c < 0x7F) std::snprintf(buf, sizeof buf, "'%c'", c);
    else std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
    return buf;
  }
  bool error(const char* at, std::string message) {
    error_at_ = at;
    error_ = std::move(message);
    return false;
  }
  // NUL bytes and byte order marks are named on their own: they are what breaks most lines that
  // look right in an editor.
  bool expected(const char* at, const char* what) {
    if (at < e_ && *at == 0) return error(at, std::string("NUL byte (expected ") + what + ")");
    if (e_ - at >= 3 && std::memcmp(at, "\xEF\xBB\xBF", 3) == 0)
      return error(at, "UTF-8 byte order mark (U+FEFF) inside the file; remove it");
    return error(at, std::string("expected ") + what + ", found " + describe(at));
  }
  void ws() {
    while (p_ < e_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(uint32_t* v) {
    if (e_ - p_ < 4) return false;
    uint32_t r = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(p_[i]);
      if (h < 0) return false;
      r = (r << 4) | uint32_t(h);
    }
    p_ += 4;
    *v = r;
    return true;
  }
  // p_ at the opening quote; appends the decoded string to out (when non-null).
  bool string(std::string* out) {
    const char* open = p_++;
    while (true) {
      const char* start = p_;
      while (p_ < e_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20) ++p_;
      if (out) out->append(start, size_t(p_ - start));
      if (p_ >= e_) return error(open, "unterminated string (the line ends inside it)");
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == 0) return error(p_, "NUL byte inside a string (write it as \\u0000)");
      if (c < 0x20) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "control character U+%04X inside a string (JSON needs it escaped, e.g. \\n)", c);
        return error(p_, buf);
      }
      if (c == '"') {
        ++p_;
        return true;
      }
      const char* esc = p_++;  // backslash
      if (p_ >= e_) return error(open, "unterminated string (the line ends inside it)");
      char lit = 0;
      switch (*p_++) {
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
          if (!hex4(&cp)) return error(esc, "invalid \\u escape (4 hex digits expected)");
          if (cp >= 0xD800 && cp <= 0xDBFF && e_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
            const char* save = p_;
            p_ += 2;
            uint32_t lo;
            if (!hex4(&lo)) return error(save, "invalid \\u escape (4 hex digits expected)");
            if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else p_ = save;  // lone high surrogate; the next escape is read on its own
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
          if (out) utf8_append(*out, cp);
          continue;
        }
        default:
          return error(esc, "invalid escape \\" + describe(esc + 1) + " in a string");
      }
      if (out) out->push_back(lit);
    }
  }
  bool lit(const char* w) {
    size_t n = std::strlen(w);
    if (size_t(e_ - p_) < n || std::memcmp(p_, w, n) != 0)
      return error(p_, std::string("invalid literal (expected ") + w + ")");
    p_ += n;
    return true;
  }
  bool digits() {
    if (p_ >= e_ || *p_ < '0' || *p_ > '9') return false;
    while (p_ < e_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return true;
  }
  bool number() {
    const char* start = p_;
    if (p_ < e_ && *p_ == '-') {
      ++p_;
      if (p_ < e_ && *p_ == 'I') return lit("Infinity");
    }
    if (p_ < e_ && *p_ == '0') ++p_;
    else if (!digits()) return p_ == start ? expected(p_, "a value") : error(start, "invalid number");
    if (p_ < e_ && *p_ == '.') {
      ++p_;
      if (!digits()) return error(start, "invalid number (digits expected after '.')");
    }
    if (p_ < e_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < e_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digits()) return error(start, "invalid number (digits expected in the exponent)");
    }
    return true;
  }
  // `depth`: how many arrays/objects are open once this value opens one (the line's object is 1).
  bool value(int depth) {
    if (p_ >= e_) return expected(p_, "a value");
    if ((*p_ == '{' || *p_ == '[') && depth > kMaxDepth)
      return error(p_, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    switch (*p_) {
      case '"': return string(nullptr);
      case '{': {
        ++p_;
        ws();
        if (p_ < e_ && *p_ == '}') {
          ++p_;
          return true;
        }
        while (true) {
          ws();
          if (p_ >= e_ || *p_ != '"') return expected(p_, "a string key");
          if (!string(nullptr)) return false;
          ws();
          if (p_ >= e_ || *p_ != ':') return expected(p_, "':' after the key");
          ++p_;
          ws();
          if (!value(depth + 1)) return false;
          ws();
          if (p_ < e_ && *p_ == ',') {
            ++p_;
            continue;
          }
          if (p_ < e_ && *p_ == '}') {
            ++p_;
            return true;
          }
          return expected(p_, "',' or '}' after a value");
        }
      }
      case '[': {
        ++p_;
        ws();
        if (p_ < e_ && *p_ == ']') {
          ++p_;
          return true;
        }
        while (true) {
          ws();
          if (!value(depth + 1)) return false;
          ws();
          if (p_ < e_ && *p_ == ',') {
            ++p_;
            continue;
          }
          if (p_ < e_ && *p_ == ']') {
            ++p_;
            return true;
          }
          return expected(p_, "',' or ']' after a value");
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

  const char* b_;
  const char* p_;
  const char* e_;
  const char* found_ = nullptr;
  const char* error_at_ = nullptr;
  std::string error_;
};

}  // namespace

void parse_json_document(std::string_view line, const std::string& field, const std::string& file,
                         uint64_t lineno, std::string& text_out) {
  LineParser parser(line);
  Field status;
  auto at = [&] { return "line " + std::to_string(lineno); };
  if (!parser.object_field(field, text_out, &status))
    throw InputError(file, at() + ", column " + std::to_string(parser.column()), parser.error());
  if (status == Field::kMissing) throw InputError(file, at(), "no \"" + field + "\" field");
  if (status == Field::kNotString)
    throw InputError(file, at(), "\"" + field + "\" is not a string (its value starts with " + parser.found_value() + ")");
}

std::unique_ptr<DocReader> open_jsonl(const std::string& path, const ReaderOptions& opt) {
  return std::make_unique<JsonlReader>(path, opt);
}

}  // namespace mousse::tok
