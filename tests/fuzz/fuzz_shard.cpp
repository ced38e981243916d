// Fuzz target: the llm.c shard header reader and token reader (src/data/shard.cpp). The input is
// a whole .bin shard; the header is validated and tokens at both ends are read. Accepted errors:
// mousse::Error.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "data/shard.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mousse::fuzz::write_input(data, size, "input.bin");
  try {
    mousse::ShardHeader h = mousse::read_shard_header(path);
    mousse::ShardReader reader(h);
    const int64_t n = std::min<int64_t>(h.num_tokens, 64);
    std::vector<uint16_t> buf(64);
    if (n > 0) {
      reader.read(0, n, buf.data());
      reader.read(h.num_tokens - n, n, buf.data());
    }
  } catch (const mousse::Error&) {
  } catch (const std::exception& e) {
    mousse::fuzz::unexpected("shard", e);
  }
  return 0;
}
