// Host memory: the "device" of the CPU backend is the host, so copies are memcpy.
#include <cstdlib>
#include <cstring>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"

namespace mousse {

namespace {
constexpr size_t kAlign = 256;  // same alignment the CUDA backend guarantees
}

void* CpuOps::alloc(size_t bytes) {
  size_t n = (bytes + kAlign - 1) / kAlign * kAlign;
  if (n == 0) n = kAlign;
  void* p = std::aligned_alloc(kAlign, n);
  if (!p) fail("cpu alloc: out of host memory allocating ", n, " bytes");
  return p;
}

void CpuOps::free(void* p) { std::free(p); }

void CpuOps::to_host(void* dst, const Tensor& src) {
  cpu::check_cpu("to_host", "src", src);
  if (src.bytes()) std::memcpy(dst, src.data, src.bytes());
}

void CpuOps::from_host(const Tensor& dst, const void* src) {
  cpu::check_cpu("from_host", "dst", dst);
  if (dst.bytes()) std::memcpy(dst.data, src, dst.bytes());
}

}  // namespace mousse
