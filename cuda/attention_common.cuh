#pragma once
// Shared pieces of the flash-style causal attention kernels (forward and backward).
//
// Layout: qkv [B, T, 3C] with (q | k | v) each C = H * hd; q(b,t,h,d) at (b*T + t)*3C + h*hd + d,
// k at +C, v at +2C. out / dout [B, T, C]; lse [B, H, T] f32 (natural log).
//
// Algorithm (CUDA cores, f32 arithmetic; inputs bf16 or f32, templated):
//   tiles of 32 rows are staged in shared memory as f32 with a padded row stride S = HDP + 4
//   (float4-aligned, conflict-free float4 reads across lanes); HDP is the head dim padded to a
//   power of two in {32, 64, 128, 256} (the generic path for small head dims zero-pads).
//   In the "row" kernels (forward, dQ) each warp owns RPW query rows and each lane owns one key
//   of the current 32-key tile: scores are per-lane dot products (no shuffles), then the
//   probabilities are broadcast with __shfl_sync while each lane accumulates the output
//   dimensions d = lane + 32 i. The dK/dV kernel swaps the roles (warp rows = keys, lanes =
//   queries). Online softmax in the log2 domain (exp2f), lse saved, P recomputed from lse.
#include "bf16.cuh"

namespace mousse {
namespace cuda {
namespace attn {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int HDP> struct Dims {
  static constexpr int S = HDP + 4;   // shared row stride (floats)
  static constexpr int NI = HDP / 32;  // output dims per lane
  static constexpr int N4 = HDP / 4;   // float4 per row
};

// Loads rows [row0, row0 + nrows) of one head's q, k, v or dout into shared memory as f32:
// sm[r * S + d] = src[(row0 + r) * row_stride + d], zero where row >= T or d >= hd.
template <int HDP, class T>
__device__ __forceinline__ void load_rows(float* sm, const T* src, int64_t row_stride, int row0,
                                          int nrows, int T_, int hd) {
  constexpr int S = Dims<HDP>::S;
  for (int idx = threadIdx.x; idx < nrows * HDP; idx += blockDim.x) {
    const int r = idx / HDP, d = idx % HDP;
    const int t = row0 + r;
    float v = 0.f;
    if (t < T_ && d < hd) v = ld(src, int64_t(t) * row_stride + d);
    sm[r * S + d] = v;
  }
}

__device__ __forceinline__ float dot4(float4 a, float4 b, float acc) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}

}  // namespace attn
}  // namespace cuda
}  // namespace mousse
