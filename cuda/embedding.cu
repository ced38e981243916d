// Token embedding forward and a deterministic backward.
//
// Backward: a stable radix sort (CUB) of (token, position) pairs groups the positions of each
// vocabulary row in increasing order; one block per run of equal tokens then sums dout over the
// run's positions in that order for each channel and adds the sum to dwte once. No float atomics:
// the result is bitwise reproducible.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>

#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"
#include "vec.cuh"

namespace mousse {
using namespace cuda;

namespace {

// One thread per VEC-element vector of the output (16-byte accesses when VEC = kVec); one
// integer division per vector to find its row.
template <int VEC, class To, class Tw>
__global__ void embedding_fwd_kernel(To* out, const Tw* wte, const int32_t* tokens, int64_t N,
                                     int64_t C) {
  const int64_t nvr = C / VEC, n_vec = N * nvr;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n_vec;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = k / nvr, c = (k - n * nvr) * VEC;
    float v[VEC];
    load_vec<VEC>(v, wte + int64_t(tokens[n]) * C + c);
    store_vec<VEC>(out + n * C + c, v);
  }
}

__global__ void iota_kernel(int32_t* v, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    v[i] = static_cast<int32_t>(i);
}

// One block per sorted index; only the first index of each run of equal tokens does work.
// Each thread owns VEC consecutive channels (16-byte accesses when VEC = kVec) and sums them
// over the run in sorted order, so the result does not depend on the vector width.
template <int VEC, class Tw, class Tg>
__global__ void embedding_bwd_kernel(Tw* dwte, const Tg* dout, const uint32_t* sorted_tokens,
                                     const int32_t* sorted_pos, int64_t N, int64_t C) {
  const int64_t i = blockIdx.x;
  const uint32_t tok = sorted_tokens[i];
  if (i > 0 && sorted_tokens[i - 1] == tok) return;
  for (int64_t c = int64_t(threadIdx.x) * VEC; c < C; c += int64_t(blockDim.x) * VEC) {
    float acc[VEC];
#pragma unroll
    for (int e = 0; e < VEC; e++) acc[e] = 0.f;
    for (int64_t k = i; k < N && sorted_tokens[k] == tok; k++) {
      float g[VEC];
      load_vec<VEC>(g, dout + int64_t(sorted_pos[k]) * C + c);
#pragma unroll
      for (int e = 0; e < VEC; e++) acc[e] += g[e];
    }
    Tw* o = dwte + int64_t(tok) * C + c;
    float w[VEC];
    load_vec<VEC>(w, o);
#pragma unroll
    for (int e = 0; e < VEC; e++) w[e] += acc[e];
    store_vec<VEC>(o, w);
  }
}

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }

}  // namespace

void CudaOps::embedding_forward_impl(const Tensor& out, const Tensor& wte, const Tensor& tokens) {
  const char* op = "embedding_forward";
  require_cuda(out, op, "out");
  require_cuda(wte, op, "wte");
  require_cuda(tokens, op, "tokens");
  if (tokens.dtype != DType::i32) fail("cuda ", op, ": tokens must be i32");
  const int64_t N = tokens.numel(), C = wte.cols();  // out [N, C]: checked by the Ops front
  if (N == 0) return;
  dispatch_fb(out.dtype, op, [&](auto to) {
    using To = decltype(to);
    dispatch_fb(wte.dtype, op, [&](auto tw) {
      using Tw = decltype(tw);
      auto* o = static_cast<To*>(out.data);
      auto* w = static_cast<const Tw*>(wte.data);
      auto* t = static_cast<const int32_t*>(tokens.data);
      if (vec_ok(o, C, sizeof(To)) && vec_ok(w, C, sizeof(Tw)))
        embedding_fwd_kernel<kVec, To, Tw><<<grid_for(N * C / kVec), 256, 0, stream_>>>(o, w, t, N, C);
      else
        embedding_fwd_kernel<1, To, Tw><<<grid_for(N * C), 256, 0, stream_>>>(o, w, t, N, C);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::embedding_backward_impl(const Tensor& dwte, const Tensor& dout,
                                      const Tensor& tokens) {
  const char* op = "embedding_backward";
  require_cuda(dwte, op, "dwte");
  require_cuda(dout, op, "dout");
  require_cuda(tokens, op, "tokens");
  if (tokens.dtype != DType::i32) fail("cuda ", op, ": tokens must be i32");
  // dout [N, C]: checked by the Ops front
  const int64_t N = tokens.numel(), C = dwte.cols(), V = dwte.rows();
  if (N == 0 || C == 0) return;  // nothing to add (and no zero-thread launch)
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
  dispatch_fb(dwte.dtype, op, [&](auto tw) {
    using Tw = decltype(tw);
    dispatch_fb(dout.dtype, op, [&](auto tg) {
      using Tg = decltype(tg);
      auto* dw = static_cast<Tw*>(dwte.data);
      auto* g = static_cast<const Tg*>(dout.data);
      const unsigned blocks = static_cast<unsigned>(N);
      if (vec_ok(dw, C, sizeof(Tw)) && vec_ok(g, C, sizeof(Tg))) {
        // one vector per thread where the row allows (C = 768: 96 threads)
        const int threads = static_cast<int>(std::min<int64_t>(256, (C / kVec + 31) / 32 * 32));
        embedding_bwd_kernel<kVec, Tw, Tg><<<blocks, threads, 0, stream_>>>(dw, g, keys_out, vals_out, N, C);
      } else {
        const int threads = C >= 256 ? 256 : 128;
        embedding_bwd_kernel<1, Tw, Tg><<<blocks, threads, 0, stream_>>>(dw, g, keys_out, vals_out, N, C);
      }
      CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace mousse
