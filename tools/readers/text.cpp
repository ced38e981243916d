// Plain text: the whole file is one document, or (split mode) sections separated by a separator, like
// llm.c's tinyshakespeare.py: text.split(sep), and each section but the last keeps the separator at
// its end (llm.c's "spad = s + '\n\n'"). Streaming in split mode.
#include <cstring>
#include <string_view>

#include "byte_stream.h"
#include "input_error.h"
#include "reader.h"

namespace mousse::tok {

namespace {

class TextReader : public DocReader {
 public:
  TextReader(const std::string& path, const ReaderOptions& opt)
      : path_(path), opt_(opt), stream_(open_byte_stream(path)) {
    if (opt_.split && opt_.separator.empty()) throw InputError(path, "", "empty --split-on separator");
  }

  bool read(DocBatch& batch, size_t max_bytes) override {
    batch.kind = DocBatch::Kind::kText;
    batch.file = path_;
    if (done_) return false;
    bool any = false;
    if (!opt_.split) {
      std::string all;
      char tmp[1 << 16];
      while (size_t got = stream_->read(tmp, sizeof tmp)) {
        all.append(tmp, got);
        if (all.size() > opt_.max_document_bytes)
          throw InputError(path_, "", "one document of more than " + std::to_string(opt_.max_document_bytes) +
                                          " bytes (the whole file); split it into documents with --split-on");
      }
      batch.bytes += all.size();
      batch.items.push_back(std::move(all));
      done_ = true;
      return true;
    }
    const std::string& sep = opt_.separator;
    while (batch.bytes < max_bytes && batch.items.size() < kMaxBatchDocs) {
      size_t hit = std::string_view(buf_).find(sep, start_);
      if ((hit == std::string::npos ? buf_.size() : hit) - start_ > opt_.max_document_bytes)
        throw InputError(path_, "section " + std::to_string(section_ + 1),
                         "longer than " + std::to_string(opt_.max_document_bytes) + " bytes without a separator");
      if (hit == std::string::npos) {
        if (eof_) {
          // last section: everything after the last separator (possibly empty)
          batch.items.emplace_back(buf_.data() + start_, buf_.size() - start_);
          batch.bytes += buf_.size() - start_;
          done_ = true;
          return true;
        }
        refill();
        continue;
      }
      size_t end = opt_.keep_separator ? hit + sep.size() : hit;
      batch.items.emplace_back(buf_.data() + start_, end - start_);
      batch.bytes += end - start_;
      start_ = hit + sep.size();
      ++section_;
      any = true;
    }
    return any;
  }
  uint64_t consumed() const override { return stream_->consumed(); }
  uint64_t total() const override { return stream_->total(); }

 private:
  void refill() {
    buf_.erase(0, start_);
    start_ = 0;
    size_t old = buf_.size();
    // Reads grow from 16 KiB to 1 MiB: a small file costs no more than it holds.
    size_t want = std::max(chunk_, old);
    chunk_ = std::min<size_t>(chunk_ * 2, 1 << 20);
    buf_.resize(old + want);
    size_t got = stream_->read(&buf_[old], want);
    buf_.resize(old + got);
    if (got == 0) eof_ = true;
  }
  std::string path_;
  ReaderOptions opt_;
  std::unique_ptr<ByteStream> stream_;
  std::string buf_;
  size_t start_ = 0, chunk_ = 1 << 14;
  uint64_t section_ = 0;  // sections handed out
  bool eof_ = false, done_ = false;
};

}  // namespace

std::unique_ptr<DocReader> open_text(const std::string& path, const ReaderOptions& opt) {
  return std::make_unique<TextReader>(path, opt);
}

}  // namespace mousse::tok
