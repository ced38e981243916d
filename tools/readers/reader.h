// Document readers: each input file is read as a stream of document batches.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mousse::tok {

// A batch of documents from one file, in order. JSON Lines are handed over unparsed (the workers
// parse them) so parsing runs in parallel; errors still come out in input order.
struct DocBatch {
  enum class Kind { kText, kJsonLine };
  Kind kind = Kind::kText;
  std::string file;
  std::vector<std::string> items;
  std::vector<uint64_t> where;  // kJsonLine: 1-based line number of each item
  size_t bytes = 0;             // sum of items' sizes
  void clear() {
    items.clear();
    where.clear();
    bytes = 0;
  }
};

// Readers stop filling a batch at this many documents too, so a file of millions of empty
// documents still travels in bounded batches.
constexpr size_t kMaxBatchDocs = 1 << 16;

class DocReader {
 public:
  virtual ~DocReader() = default;
  // Appends documents to `batch` until it holds about `max_bytes`; returns false when the file is
  // exhausted and nothing was added. Throws InputError (naming the file and position) on bad input.
  virtual bool read(DocBatch& batch, size_t max_bytes) = 0;
  // Bytes of the input file consumed so far and the file's total size (for progress).
  virtual uint64_t consumed() const = 0;
  virtual uint64_t total() const = 0;
  // Documents skipped (parquet: null values).
  virtual uint64_t skipped() const { return 0; }
};

struct ReaderOptions {
  std::string column = "text";  // parquet column / JSON field holding the document
  bool split = false;           // text: split on `separator` (llm.c tinyshakespeare style)
  std::string separator = "\n\n";
  bool keep_separator = true;   // text: keep the separator at the end of each section but the last
  // Largest document (a whole text file, a text section, a JSON line) a reader holds in memory; a
  // longer one is an error (a missing newline or separator, a decompression bomb), not a run that
  // grows until memory runs out.
  uint64_t max_document_bytes = uint64_t(1) << 30;
};

enum class InputFormat { kAuto, kParquet, kJsonl, kText };

// Format from the file name: *.parquet, *.jsonl / *.json / *.ndjson (optionally .gz / .zst), else text.
InputFormat detect_format(const std::string& path);

std::unique_ptr<DocReader> open_parquet(const std::string& path, const ReaderOptions& opt);
std::unique_ptr<DocReader> open_jsonl(const std::string& path, const ReaderOptions& opt);
std::unique_ptr<DocReader> open_text(const std::string& path, const ReaderOptions& opt);
// Opens the reader for `fmt` (kAuto: from the file name). Its errors are all InputError: a failure
// that is not (out of memory, say) is reported with the file and the byte offset reached.
std::unique_ptr<DocReader> open_reader(const std::string& path, InputFormat fmt, const ReaderOptions& opt);
// The wrapper open_reader() puts around a reader: InputErrors pass, std::bad_alloc and the like
// become InputErrors naming `path` and the byte offset the reader had reached.
std::unique_ptr<DocReader> guard_reader(const std::string& path, std::unique_ptr<DocReader> inner);

// Expands inputs (files, globs, directories; directories recursively, sorted by path) into files in
// a deterministic order. Throws std::runtime_error when an input matches nothing.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

}  // namespace mousse::tok
