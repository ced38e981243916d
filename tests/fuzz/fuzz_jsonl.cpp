// Fuzz target: the streaming readers of mousse-tokenize (tools/readers/: JSON Lines with the line
// parser, text, and the gzip / zstd streams under both). The first input byte picks the reader
// and the file name (so the decompressor), the rest is the file:
//   0 .jsonl   1 .jsonl.gz   2 .jsonl.zst   3 .txt (one document)   4 .txt split on "\n\n"
//   5 .txt.gz split on "\n" without the separator
// Accepted errors: InputError. Invalid UTF-8 in the text is replaced as the tool does.
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "readers/input_error.h"
#include "readers/jsonl.h"
#include "readers/reader.h"
#include "tokenizer/utf8.h"

using namespace mousse::tok;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* const kNames[] = {"input.jsonl", "input.jsonl.gz", "input.jsonl.zst",
                                       "input.txt",   "input.txt",      "input.txt.gz"};
  const int mode = data[0] % 6;
  const std::string path = mousse::fuzz::write_input(data + 1, size - 1, kNames[mode]);
  ReaderOptions opt;
  opt.max_document_bytes = 1 << 20;
  if (mode >= 4) {
    opt.split = true;
    opt.separator = mode == 4 ? "\n\n" : "\n";
    opt.keep_separator = mode == 4;
  }
  try {
    auto reader = mode < 3 ? open_jsonl(path, opt) : open_text(path, opt);
    DocBatch batch;
    std::string text, clean;
    for (size_t docs = 0; docs < 100000 && reader->read(batch, 1 << 16); batch.clear()) {
      docs += batch.items.size();
      for (size_t i = 0; i < batch.items.size(); ++i) {
        std::string_view doc = batch.items[i];
        if (batch.kind == DocBatch::Kind::kJsonLine) {
          try {
            parse_json_document(batch.items[i], opt.column, path, batch.where[i], text);
          } catch (const InputError&) {
            continue;  // the tool stops at the first bad line; here the next lines are tried too
          }
          doc = text;
        }
        size_t replaced = 0;
        std::string_view valid = utf8_sanitize(doc, clean, &replaced);
        if (utf8_valid_prefix(valid) != valid.size()) __builtin_trap();  // replacement must leave valid UTF-8
      }
    }
  } catch (const InputError&) {
  } catch (const std::exception& e) {
    mousse::fuzz::unexpected("jsonl", e);
  }
  return 0;
}
