// Token embedding forward and a deterministic backward.
//
// Backward: a stable radix sort (CUB) of (token, position) pairs groups the positions of each
// vocabulary row in increasing order; one block per run of equal tokens then sums dout over the
// run's positions in that order for each channel and adds the sum to dwte once. No float atomics:
// the result is bitwise reproducible.
#include <cub/device/device_radix_sort.cuh>

#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"

namespace mousse {
using namespace cuda;

namespace {

template <class To, class Tw>
__global__ void embedding_fwd_kernel(To* out, const Tw* wte, const int32_t* tokens, int64_t N,
                                     int64_t C) {
  const int64_t n_el = N * C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_el;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / C, c = i - n * C;
    st(out, i, ld(wte, int64_t(tokens[n]) * C + c));
  }
}

__global__ void iota_kernel(int32_t* v, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    v[i] = static_cast<int32_t>(i);
}

// One block per sorted index; only the first index of each run of equal tokens does work.
template <class Tw, class Tg>
__global__ void embedding_bwd_kernel(Tw* dwte, const Tg* dout, const uint32_t* sorted_tokens,
                                     const int32_t* sorted_pos, int64_t N, int64_t C) {
  const int64_t i = blockIdx.x;
  const uint32_t tok = sorted_tokens[i];
  if (i > 0 && sorted_tokens[i - 1] == tok) return;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = 0.f;
    for (int64_t k = i; k < N && sorted_tokens[k] == tok; k++)
      acc += ld(dout, int64_t(sorted_pos[k]) * C + c);
    const int64_t o = int64_t(tok) * C + c;
    st(dwte, o, ld(dwte, o) + acc);
  }
}

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }

}  // namespace

void CudaOps::embedding_forward(const Tensor& out, const Tensor& wte, const Tensor& tokens) {
  const char* op = "embedding_forward";
  require_cuda(out, op, "out");
  require_cuda(wte, op, "wte");
  require_cuda(tokens, op, "tokens");
  if (tokens.dtype != DType::i32) fail("cuda ", op, ": tokens must be i32");
  const int64_t N = tokens.numel(), C = wte.cols();
  if (out.numel() != N * C)
    fail("cuda ", op, ": out ", out.shape.str(), " is not [", N, ", ", C, "]");
  if (N == 0) return;
  dispatch_fb(out.dtype, op, [&](auto to) {
    using To = decltype(to);
    dispatch_fb(wte.dtype, op, [&](auto tw) {
      using Tw = decltype(tw);
      embedding_fwd_kernel<To, Tw><<<grid_for(N * C), 256, 0, stream_>>>(
          static_cast<To*>(out.data), static_cast<const Tw*>(wte.data),
          static_cast<const int32_t*>(tokens.data), N, C);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens) {
  const char* op = "embedding_backward";
  require_cuda(dwte, op, "dwte");
  require_cuda(dout, op, "dout");
  require_cuda(tokens, op, "tokens");
  if (tokens.dtype != DType::i32) fail("cuda ", op, ": tokens must be i32");
  const int64_t N = tokens.numel(), C = dwte.cols(), V = dwte.rows();
  if (dout.numel() != N * C)
    fail("cuda ", op, ": dout ", dout.shape.str(), " is not [", N, ", ", C, "]");
  if (N == 0) return;
  if (N > INT32_MAX) fail("cuda ", op, ": too many positions (", N, ")");
  int end_bit = 1;
  while (end_bit < 32 && (int64_t(1) << end_bit) < V) end_bit++;

  const int n = static_cast<int>(N);
  const uint32_t* keys_in = static_cast<const uint32_t*>(tokens.data);  // ids are >= 0
  size_t temp_bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, (uint32_t*)nullptr,
                                             (const int32_t*)nullptr, (int32_t*)nullptr, n, 0,
                                             end_bit, stream_));
  const size_t b_keys = align256(sizeof(uint32_t) * N), b_vals = align256(sizeof(int32_t) * N);
  char* base = static_cast<char*>(scratch(b_keys + 2 * b_vals + align256(temp_bytes)));
  uint32_t* keys_out = reinterpret_cast<uint32_t*>(base);
  int32_t* vals_in = reinterpret_cast<int32_t*>(base + b_keys);
  int32_t* vals_out = reinterpret_cast<int32_t*>(base + b_keys + b_vals);
  void* temp = base + b_keys + 2 * b_vals;

  iota_kernel<<<grid_for(N), 256, 0, stream_>>>(vals_in, N);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, vals_in,
                                             vals_out, n, 0, end_bit, stream_));
  const int threads = C >= 256 ? 256 : 128;
  dispatch_fb(dwte.dtype, op, [&](auto tw) {
    using Tw = decltype(tw);
    dispatch_fb(dout.dtype, op, [&](auto tg) {
      using Tg = decltype(tg);
      embedding_bwd_kernel<Tw, Tg><<<static_cast<unsigned>(N), threads, 0, stream_>>>(
          static_cast<Tw*>(dwte.data), static_cast<const Tg*>(dout.data), keys_out, vals_out, N, C);
      CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace mousse
