#pragma once
// Device helpers shared by the kernels: dtype conversion, stochastic rounding, warp/block
// reductions, and host-side dispatch of a tensor's dtype onto a C++ element type.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "core/tensor.h"

namespace mousse {
namespace cuda {

using bf16 = __nv_bfloat16;

// The arithmetic type of an element type: double for double, float otherwise.
template <class T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <class T> using acc_t = typename AccOf<T>::type;

template <class T> __device__ __forceinline__ acc_t<T> ld(const T* p, int64_t i) {
  return static_cast<acc_t<T>>(p[i]);
}
template <> __device__ __forceinline__ float ld<bf16>(const bf16* p, int64_t i) {
  return __bfloat162float(p[i]);
}

template <class T> __device__ __forceinline__ T to_elem(float v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ bf16 to_elem<bf16>(float v) { return __float2bfloat16_rn(v); }
template <class T> __device__ __forceinline__ T to_elem_d(double v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ bf16 to_elem_d<bf16>(double v) { return __double2bfloat16(v); }

template <class T> __device__ __forceinline__ void st(T* p, int64_t i, float v) { p[i] = to_elem<T>(v); }
template <class T> __device__ __forceinline__ void st(T* p, int64_t i, double v) { p[i] = to_elem_d<T>(v); }

// A 32-bit hash of (seed, index): low-bias integer mixing (splitmix64 finaliser).
__device__ __forceinline__ uint32_t hash_u32(uint64_t seed, uint64_t idx) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (idx + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<uint32_t>(z);
}

// Stochastic rounding of an f32 to bf16: add 16 random bits below the bf16 mantissa, truncate.
// Unbiased: E[result] = x for finite x within range. Non-finite values round to nearest.
__device__ __forceinline__ bf16 stochastic_bf16(float x, uint32_t rnd) {
  if (!isfinite(x)) return __float2bfloat16_rn(x);
  uint32_t bits = __float_as_uint(x);
  uint32_t r = bits + (rnd & 0xFFFFu);
  // Overflow past the largest finite bf16 would give inf; keep the truncated value instead.
  if (((r >> 23) & 0xFFu) == 0xFFu) r = bits;
  r &= 0xFFFF0000u;
  __nv_bfloat16_raw raw;
  raw.x = static_cast<unsigned short>(r >> 16);
  return bf16(raw);
}

template <class T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
template <class T> __device__ T block_sum(T v) {
  __shared__ T partial[32];
  __shared__ T total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // protect partial/total against a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T s = lane < nwarps ? partial[lane] : T(0);
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// Grid for n elements with a grid-stride loop.
inline unsigned grid_for(int64_t n, int threads = 256, int64_t max_blocks = 65535LL * 4) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > max_blocks) b = max_blocks;
  return static_cast<unsigned>(b);
}

}  // namespace cuda

// Host-side dispatch of a dtype onto an element type: f(T{}) for T in the allowed set.
// Throws a clear error naming the op and the dtype otherwise.
template <class F> void dispatch_fdb(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    case DType::bf16: f(cuda::bf16{}); return;
    default: fail("cuda ", op, ": unsupported dtype ", dtype_name(dt));
  }
}
template <class F> void dispatch_fb(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); return;
    case DType::bf16: f(cuda::bf16{}); return;
    default: fail("cuda ", op, ": unsupported dtype ", dtype_name(dt), " (expected f32 or bf16)");
  }
}
template <class F> void dispatch_fd(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    default: fail("cuda ", op, ": unsupported dtype ", dtype_name(dt), " (expected f32 or f64)");
  }
}

}  // namespace mousse
