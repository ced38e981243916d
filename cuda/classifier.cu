// Fused classifier: per logits row, the log-sum-exp over the real vocabulary (online max/sum),
// the loss, and (optionally) the gradient written over the logits in place:
// grad_scale * (softmax - onehot) on the first V columns, 0 on the padding. Probabilities are
// never stored separately.
//
// Memory traffic is one read and one write of the logits: one block per row loads the row once
// (16-byte vectors), keeping a copy in shared memory (Vp * sizeof(T): 100 KB for bf16 at
// Vp = 50304, so two blocks fit on an H100 SM and one loads while the other writes), and the
// gradient pass reads that copy instead of global memory. When the row does not fit in shared
// memory, the gradient pass re-reads the row from global memory (correct, slower).
#include <cfloat>

#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"
#include "vec.cuh"

namespace mousse {
using namespace cuda;

namespace {

constexpr int kThreads = 512;
constexpr int kBatch = 4;  // vectors loaded per thread before use: 64 B in flight per thread

struct MaxSum {
  float m, s;
};

__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  const float m = fmaxf(a.m, b.m);
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

// VEC: elements per access (kVec, or 1 for unaligned rows / widths not a multiple of kVec).
// kCache: keep the row in dynamic shared memory between the passes.
template <class T, int VEC, bool kCache>
__global__ void __launch_bounds__(kThreads, 2)
classifier_kernel(float* losses, T* logits, const int32_t* targets, int64_t Vp, int64_t V,
                  float grad_scale, bool compute_grad) {
  extern __shared__ uint4 row_cache_raw[];
  Vec<T, VEC>* cache = reinterpret_cast<Vec<T, VEC>*>(row_cache_raw);
  __shared__ MaxSum warp_ms[kThreads / 32];
  __shared__ float target_logit;
  __shared__ float row_lse;
  const int64_t row = blockIdx.x;
  T* x = logits + row * Vp;
  Vec<T, VEC>* xv = reinterpret_cast<Vec<T, VEC>*>(x);
  const int tgt = targets[row];
  const bool tgt_ok = tgt >= 0 && tgt < V;
  if (threadIdx.x == 0) target_logit = tgt_ok ? ld(x, tgt) : NAN;
  // Vectors holding at least one real column; the rest are all padding.
  const int n_real = static_cast<int>((V + VEC - 1) / VEC), n_all = static_cast<int>(Vp / VEC);

  // Pass 1: online (max, sum of exp) per thread; one rescale per vector, not per element.
  MaxSum ms{-INFINITY, 0.f};
  for (int k0 = threadIdx.x; k0 < n_real; k0 += kBatch * kThreads) {
    Vec<T, VEC> raw[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; u++) {
      const int k = k0 + u * kThreads;
      if (k < n_real) raw[u] = xv[k];
    }
#pragma unroll
    for (int u = 0; u < kBatch; u++) {
      const int k = k0 + u * kThreads;
      if (k >= n_real) break;
      if (kCache) cache[k] = raw[u];
      float v[VEC];
      float vmax = -INFINITY;
#pragma unroll
      for (int i = 0; i < VEC; i++) {
        v[i] = int64_t(k) * VEC + i < V ? ld(raw[u].e, i) : -INFINITY;
        vmax = fmaxf(vmax, v[i]);
      }
      if (vmax == -INFINITY) continue;
      const float m = fmaxf(ms.m, vmax);
      float s = ms.s * expf(ms.m - m);  // exp(-inf) = 0 on the first vector
#pragma unroll
      for (int i = 0; i < VEC; i++) s += expf(v[i] - m);
      ms = {m, s};
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, ms.m, o), __shfl_xor_sync(0xffffffffu, ms.s, o)};
    ms = combine(ms, other);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_ms[warp] = ms;
  __syncthreads();
  if (warp == 0) {
    MaxSum t = lane < kThreads / 32 ? warp_ms[lane] : MaxSum{-INFINITY, 0.f};
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      MaxSum other{__shfl_xor_sync(0xffffffffu, t.m, o), __shfl_xor_sync(0xffffffffu, t.s, o)};
      t = combine(t, other);
    }
    if (lane == 0) {
      const float lse = t.m + logf(t.s);
      row_lse = lse;
      losses[row] = lse - target_logit;
    }
  }
  __syncthreads();  // target_logit was read before anyone overwrites the row
  if (!compute_grad) return;
  const float lse = row_lse;
  // Pass 2: each thread reads back (from the cache) exactly the vectors it stored in pass 1.
  for (int k = threadIdx.x; k < n_all; k += kThreads) {
    float g[VEC];
    if (k < n_real) {
      const Vec<T, VEC> raw = kCache ? cache[k] : xv[k];
#pragma unroll
      for (int i = 0; i < VEC; i++) {
        const int64_t c = int64_t(k) * VEC + i;
        g[i] = c < V ? grad_scale * (expf(ld(raw.e, i) - lse) - (c == tgt ? 1.f : 0.f)) : 0.f;
      }
    } else {
#pragma unroll
      for (int i = 0; i < VEC; i++) g[i] = 0.f;
    }
    store_vec<VEC>(x + int64_t(k) * VEC, g);
  }
}

template <class T, int VEC, bool kCache>
void launch_classifier(float* losses, T* logits, const int32_t* targets, int64_t N, int64_t Vp,
                       int64_t V, float grad_scale, bool compute_grad, size_t smem,
                       cudaStream_t stream) {
  auto kernel = classifier_kernel<T, VEC, kCache>;
  if (kCache)  // above 48 KB of dynamic shared memory needs an opt-in (cheap; idempotent)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem)));
  kernel<<<static_cast<unsigned>(N), kThreads, kCache ? smem : 0, stream>>>(
      losses, logits, targets, Vp, V, grad_scale, compute_grad);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void CudaOps::classifier_impl(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                              int64_t vocab_size, double grad_scale, bool compute_grad) {
  const char* op = "classifier";
  require_cuda(losses, op, "losses");
  require_cuda(logits, op, "logits");
  require_cuda(targets, op, "targets");
  if (targets.dtype != DType::i32) fail("cuda ", op, ": targets must be i32");
  if (losses.dtype != DType::f32) fail("cuda ", op, ": losses must be f32");
  const int64_t N = logits.rows(), Vp = logits.cols();
  if (N == 0) return;
  if (N > INT32_MAX || Vp > INT32_MAX) fail("cuda ", op, ": logits too large");
  int max_smem = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_));
  // Room for the kernel's static shared memory (a few hundred bytes).
  const size_t smem_limit = max_smem > 1024 ? size_t(max_smem) - 1024 : 0;
  dispatch_fb(logits.dtype, op, [&](auto tl) {
    using T = decltype(tl);
    const size_t smem = size_t(Vp) * sizeof(T);
    const bool cache = smem <= smem_limit;
    auto* L = static_cast<float*>(losses.data);
    auto* X = static_cast<T*>(logits.data);
    auto* Tg = static_cast<const int32_t*>(targets.data);
    const float gs = static_cast<float>(grad_scale);
    const bool vec = vec_ok(logits.data, Vp, sizeof(T));
    if (vec && cache)
      launch_classifier<T, kVec, true>(L, X, Tg, N, Vp, vocab_size, gs, compute_grad, smem, stream_);
    else if (vec)
      launch_classifier<T, kVec, false>(L, X, Tg, N, Vp, vocab_size, gs, compute_grad, 0, stream_);
    else if (cache)
      launch_classifier<T, 1, true>(L, X, Tg, N, Vp, vocab_size, gs, compute_grad, smem, stream_);
    else
      launch_classifier<T, 1, false>(L, X, Tg, N, Vp, vocab_size, gs, compute_grad, 0, stream_);
  });
}

}  // namespace mousse
