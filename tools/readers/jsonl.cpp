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

void parse_json_document(std::string_view line, const std::string& field, const std::string& file,
                         uint64_t lineno, std::string& text_out) {
  std::string scratch;
  std::string_view clean = utf8_sanitize(line, scratch);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(clean.begin(), clean.end());
  } catch (const nlohmann::json::parse_error& e) {
    std::string msg = e.what();
    throw InputError(file, "line " + std::to_string(lineno) + ", byte " + std::to_string(e.byte), "invalid JSON: " + msg);
  }
  if (!j.is_object()) throw InputError(file, "line " + std::to_string(lineno), "expected a JSON object");
  auto it = j.find(field);
  if (it == j.end()) throw InputError(file, "line " + std::to_string(lineno), "no \"" + field + "\" field");
  if (!it->is_string()) throw InputError(file, "line " + std::to_string(lineno), "\"" + field + "\" is not a string");
  text_out = std::move(it->get_ref<std::string&>());
}

std::unique_ptr<DocReader> open_jsonl(const std::string& path, const ReaderOptions& opt) {
  return std::make_unique<JsonlReader>(path, opt);
}

}  // namespace mousse::tok
