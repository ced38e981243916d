// Fused classifier: per logits row, one pass computes the log-sum-exp over the real vocabulary
// (online max/sum), the loss, and (optionally) the gradient written over the logits in place:
// grad_scale * (softmax - onehot) on the first V columns, 0 on the padding. Probabilities are
// never stored separately.
#include <cfloat>

#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"

namespace mousse {
using namespace cuda;

namespace {

constexpr int kThreads = 512;

struct MaxSum {
  float m, s;
};

__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  const float m = fmaxf(a.m, b.m);
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

template <class T>
__global__ void __launch_bounds__(kThreads)
classifier_kernel(float* losses, T* logits, const int32_t* targets, int64_t Vp, int64_t V,
                  float grad_scale, bool compute_grad) {
  __shared__ MaxSum warp_ms[kThreads / 32];
  __shared__ float target_logit;
  __shared__ float row_lse;
  const int64_t row = blockIdx.x;
  T* x = logits + row * Vp;
  const int tgt = targets[row];
  const bool tgt_ok = tgt >= 0 && tgt < V;
  if (threadIdx.x == 0) target_logit = tgt_ok ? ld(x, tgt) : NAN;
  MaxSum ms{-INFINITY, 0.f};
  for (int64_t c = threadIdx.x; c < V; c += kThreads) {
    const float v = ld(x, c);
    if (v > ms.m) {
      ms.s = ms.s * expf(ms.m - v) + 1.f;  // exp(-inf) = 0 on the first element
      ms.m = v;
    } else {
      ms.s += expf(v - ms.m);
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
  for (int64_t c = threadIdx.x; c < Vp; c += kThreads) {
    float g = 0.f;
    if (c < V) {
      const float p = expf(ld(x, c) - lse);
      g = grad_scale * (p - (c == tgt ? 1.f : 0.f));
    }
    st(x, c, g);
  }
}

}  // namespace

void CudaOps::classifier(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                         int64_t vocab_size, double grad_scale, bool compute_grad) {
  const char* op = "classifier";
  require_cuda(losses, op, "losses");
  require_cuda(logits, op, "logits");
  require_cuda(targets, op, "targets");
  if (targets.dtype != DType::i32) fail("cuda ", op, ": targets must be i32");
  if (losses.dtype != DType::f32) fail("cuda ", op, ": losses must be f32");
  const int64_t N = logits.rows(), Vp = logits.cols();
  if (targets.numel() != N || losses.numel() != N)
    fail("cuda ", op, ": logits ", logits.shape.str(), " needs ", N, " targets and losses, got ",
         targets.numel(), " and ", losses.numel());
  if (vocab_size <= 0 || vocab_size > Vp)
    fail("cuda ", op, ": vocab_size ", vocab_size, " outside (0, ", Vp, "]");
  if (N == 0) return;
  if (N > INT32_MAX) fail("cuda ", op, ": too many rows");
  dispatch_fb(logits.dtype, op, [&](auto tl) {
    using T = decltype(tl);
    classifier_kernel<T><<<static_cast<unsigned>(N), kThreads, 0, stream_>>>(
        static_cast<float*>(losses.data), static_cast<T*>(logits.data),
        static_cast<const int32_t*>(targets.data), Vp, vocab_size, grad_scale, compute_grad);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace mousse
