// Fuzz target: the parquet reader of mousse-tokenize (tools/readers/parquet.cpp). The input is a
// whole .parquet file; every document of its `text` column is read. Accepted errors: InputError.
#include <cstdint>

#include "fuzz_common.h"
#include "readers/input_error.h"
#include "readers/reader.h"

using namespace mousse::tok;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mousse::fuzz::write_input(data, size, "input.parquet");
  ReaderOptions opt;
  opt.max_document_bytes = 1 << 20;
  try {
    auto reader = open_parquet(path, opt);
    DocBatch batch;
    // A few bytes of RLE can stand for billions of (empty) documents, which the reader hands out
    // lazily; the fuzzer needs only the first ones.
    for (size_t docs = 0; docs < 100000 && reader->read(batch, 1 << 16); batch.clear()) docs += batch.items.size();
  } catch (const InputError&) {
  } catch (const std::exception& e) {
    mousse::fuzz::unexpected("parquet", e);
  }
  return 0;
}
