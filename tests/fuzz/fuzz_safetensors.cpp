// Fuzz target: the safetensors reader (src/core/safetensors.cpp). The input is a whole
// .safetensors file; every tensor is read in its own dtype and, for float tensors, converted to
// f32 and f64. Accepted errors: mousse::Error.
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mousse::DType;
  const std::string path = mousse::fuzz::write_input(data, size, "input.safetensors");
  try {
    mousse::SafeTensorsFile file(path);
    std::vector<uint8_t> buf;
    for (const auto& e : file.entries()) {
      const int64_t n = e.shape.numel();
      if (n < 0 || n > (int64_t(1) << 20)) continue;  // the harness's own memory bound
      buf.assign(size_t(n) * 8 + 8, 0);
      file.read(e.name, e.dtype, e.shape, buf.data());
      if (e.dtype != DType::i32) {
        file.read(e.name, DType::f32, e.shape, buf.data());
        file.read(e.name, DType::f64, e.shape, buf.data());
      }
    }
    (void)file.metadata();
  } catch (const mousse::Error&) {
  } catch (const std::exception& e) {
    mousse::fuzz::unexpected("safetensors", e);
  }
  return 0;
}
