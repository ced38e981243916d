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
      size_t hit = std::string_view(win_.buf).find(sep, win_.start);
      if ((hit == std::string::npos ? win_.buf.size() : hit) - win_.start > opt_.max_document_bytes)
        throw InputError(path_, "section " + std::to_string(section_ + 1),
                         "longer than " + std::to_string(opt_.max_document_bytes) + " bytes without a separator");
      if (hit == std::string::npos) {
        if (win_.eof) {
          // last section: everything after the last separator (possibly empty)
          batch.items.emplace_back(win_.buf.data() + win_.start, win_.buf.size() - win_.start);
          batch.bytes += win_.buf.size() - win_.start;
          done_ = true;
          return true;
        }
        win_.refill(*stream_);
        continue;
      }
      size_t end = opt_.keep_separator ? hit + sep.size() : hit;
      batch.items.emplace_back(win_.buf.data() + win_.start, end - win_.start);
      batch.bytes += end - win_.start;
      win_.start = hit + sep.size();
      ++section_;
      any = true;
    }
    return any;
  }
  uint64_t consumed() const override { return stream_->consumed(); }
  uint64_t total() const override { return stream_->total(); }

 private:
  std::string path_;
  ReaderOptions opt_;
  std::unique_ptr<ByteStream> stream_;
  StreamWindow win_;
  uint64_t section_ = 0;  // sections handed out
  bool done_ = false;
};

}  // namespace

std::unique_ptr<DocReader> open_text(const std::string& path, const ReaderOptions& opt) {
  return std::make_unique<TextReader>(path, opt);
}

}  // namespace mousse::tok
