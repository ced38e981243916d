#pragma once
// Vectorised global-memory access for the memory-bound kernels: N consecutive elements moved as
// one aligned vector (16-byte LDG.E.128 / STG.E.128 pieces), converted to / from f32.
//
// Kernels take the vector width as a template parameter: 8 when every row start is 16-byte
// aligned and the row width is a multiple of 8 (checked on the host with vec_ok()), else 1 (the
// scalar fallback, same code path). Arithmetic is always f32 (bf16 and f32 element types), so
// results are identical to scalar code up to the usual float rounding.
#include <cstdint>

#include "bf16.cuh"

namespace mousse {
namespace cuda {

constexpr int kVec = 8;  // elements per vector access: 16 B of bf16, 32 B (two accesses) of f32

// N elements of T as one object; aligned to its size up to 16 bytes (so bf16x8 and f32x4 are
// single 128-bit accesses, f32x8 two of them).
template <class T, int N>
struct alignas(sizeof(T) * N >= 16 ? 16 : sizeof(T) * N) Vec {
  T e[N];
};

template <int N, class T>
__device__ __forceinline__ void load_vec(float (&v)[N], const T* p) {
  const Vec<T, N> r = *reinterpret_cast<const Vec<T, N>*>(p);
#pragma unroll
  for (int i = 0; i < N; i++) v[i] = ld(r.e, i);
}

template <int N, class T>
__device__ __forceinline__ void store_vec(T* p, const float (&v)[N]) {
  Vec<T, N> r;
#pragma unroll
  for (int i = 0; i < N; i++) r.e[i] = to_elem<T>(v[i]);
  *reinterpret_cast<Vec<T, N>*>(p) = r;
}

// The loop of every elementwise kernel over n elements, grid-stride: vector(i0) for each whole
// VEC-element vector starting at i0 (one thread per vector), then scalar(i) for the n % VEC
// elements after them; with VEC = 1, scalar(i) for every element. Pass `vector` as a generic
// lambda ([&](auto i0) {...}): it is then compiled only for the VEC > 1 instantiations.
template <int VEC, class Vector, class Scalar>
__device__ __forceinline__ void for_each_vector(int64_t n, Vector&& vector, Scalar&& scalar) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t nv = VEC > 1 ? n / VEC : 0;
  if constexpr (VEC > 1)
    for (int64_t k = tid; k < nv; k += stride) vector(k * VEC);
  for (int64_t i = nv * VEC + tid; i < n; i += stride) scalar(i);
}

// dst[0, N) (=) x rounded stochastically to bf16, element j with the random bits of flat index
// index + j (hash_u32(seed, index + j)): the rounding copy_stochastic gives that element.
template <int N>
__device__ __forceinline__ void store_stochastic(bf16* dst, const float (&x)[N], uint64_t seed,
                                                 int64_t index) {
  Vec<bf16, N> r;
#pragma unroll
  for (int j = 0; j < N; j++) r.e[j] = stochastic_bf16(x[j], hash_u32(seed, uint64_t(index + j)));
  *reinterpret_cast<Vec<bf16, N>*>(dst) = r;
}

}  // namespace cuda

// Host side: can rows of `width` elements of `elem_bytes` starting at `p` be accessed as
// 16-byte-aligned vectors of kVec elements?
inline bool vec_ok(const void* p, int64_t width, size_t elem_bytes) {
  return width % cuda::kVec == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0 &&
         (width * int64_t(elem_bytes)) % 16 == 0;
}

}  // namespace mousse
