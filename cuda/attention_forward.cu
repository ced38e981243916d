// Causal flash-style attention forward (see attention_common.cuh for the algorithm).
#include "attention_common.cuh"
#include "attention_cudnn.h"
#include "check.h"
#include "cuda_ops.h"

namespace mousse {
using namespace cuda;
using namespace cuda::attn;

namespace {

constexpr int kRpw = 8;                 // query rows per warp
constexpr int kQB = kWarps * kRpw;      // query rows per block (32)

template <int HDP, class T>
__global__ void __launch_bounds__(kThreads)
attn_fwd_kernel(T* out, float* lse, const T* qkv, int T_, int H, int hd, float scale_log2) {
  using D = Dims<HDP>;
  constexpr int S = D::S, NI = D::NI, N4 = D::N4;
  extern __shared__ float4 smem4[];
  float* sQ = reinterpret_cast<float*>(smem4);
  float* sK = sQ + kQB * S;
  float* sV = sK + 32 * S;

  const int qb = gridDim.x - 1 - blockIdx.x;  // the longest rows first
  const int bh = blockIdx.y, b = bh / H, h = bh % H;
  const int64_t C = int64_t(H) * hd, C3 = 3 * C;
  const T* qbase = qkv + int64_t(b) * T_ * C3 + int64_t(h) * hd;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int q0 = qb * kQB;

  load_rows<HDP>(sQ, qbase, C3, q0, kQB, T_, hd);

  float o[kRpw][NI], m[kRpw], l[kRpw];
#pragma unroll
  for (int r = 0; r < kRpw; r++) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int i = 0; i < NI; i++) o[r][i] = 0.f;
  }
  const int last_q = min(q0 + kQB - 1, T_ - 1);
  const int kt_end = last_q / 32;
  for (int kt = 0; kt <= kt_end; kt++) {
    __syncthreads();  // previous K/V tile fully consumed
    load_rows<HDP>(sK, qbase + C, C3, kt * 32, 32, T_, hd);
    load_rows<HDP>(sV, qbase + 2 * C, C3, kt * 32, 32, T_, hd);
    __syncthreads();
    const int key = kt * 32 + lane;
    float s[kRpw];
#pragma unroll
    for (int r = 0; r < kRpw; r++) s[r] = 0.f;
    const float4* k4p = reinterpret_cast<const float4*>(sK + lane * S);
#pragma unroll 4
    for (int d4 = 0; d4 < N4; d4++) {
      const float4 k4 = k4p[d4];
#pragma unroll
      for (int r = 0; r < kRpw; r++) {
        const float4 q4 = reinterpret_cast<const float4*>(sQ + (warp * kRpw + r) * S)[d4];
        s[r] = dot4(q4, k4, s[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < kRpw; r++) {
      const int qi = q0 + warp * kRpw + r;
      const float sc = key <= qi ? s[r] * scale_log2 : -INFINITY;
      const float mnew = fmaxf(m[r], warp_max(sc));
      const float msafe = mnew == -INFINITY ? 0.f : mnew;
      const float corr = exp2f(m[r] - msafe);
      const float p = exp2f(sc - msafe);
      l[r] = l[r] * corr + warp_sum(p);
      m[r] = mnew;
#pragma unroll
      for (int i = 0; i < NI; i++) o[r][i] *= corr;
      s[r] = p;
    }
#pragma unroll 4
    for (int j = 0; j < 32; j++) {
      float v[NI];
#pragma unroll
      for (int i = 0; i < NI; i++) v[i] = sV[j * S + lane + 32 * i];
#pragma unroll
      for (int r = 0; r < kRpw; r++) {
        const float pj = __shfl_sync(0xffffffffu, s[r], j);
#pragma unroll
        for (int i = 0; i < NI; i++) o[r][i] = fmaf(pj, v[i], o[r][i]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRpw; r++) {
    const int qi = q0 + warp * kRpw + r;
    if (qi >= T_) continue;
    const float inv = 1.f / l[r];
    T* orow = out + (int64_t(b) * T_ + qi) * C + int64_t(h) * hd;
#pragma unroll
    for (int i = 0; i < NI; i++) {
      const int d = lane + 32 * i;
      if (d < hd) st(orow, d, o[r][i] * inv);
    }
    if (lane == 0) lse[(int64_t(b) * H + h) * T_ + qi] = (m[r] + log2f(l[r])) * kLn2;
  }
}

template <int HDP, class T>
void launch_fwd(const Tensor& out, const Tensor& lse, const Tensor& qkv, int B, int T_, int H,
                int hd, cudaStream_t stream) {
  constexpr int S = Dims<HDP>::S;
  const size_t smem = sizeof(float) * size_t(kQB + 64) * S;
  auto kernel = attn_fwd_kernel<HDP, T>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  dim3 grid((T_ + kQB - 1) / kQB, B * H);
  const float scale_log2 = kLog2e / sqrtf(float(hd));
  kernel<<<grid, kThreads, smem, stream>>>(static_cast<T*>(out.data), static_cast<float*>(lse.data),
                                           static_cast<const T*>(qkv.data), T_, H, hd, scale_log2);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

// Shared with attention_backward.cu: B, T, H, hd of qkv [B, T, 3C] (its shape checked by the Ops
// front), and the kernels' limits on them.
void attention_dims(const Tensor& qkv, int n_head, const char* op, int& B, int& T_, int& H, int& hd) {
  const int64_t C3 = qkv.shape[2];
  B = static_cast<int>(qkv.shape[0]);
  T_ = static_cast<int>(qkv.shape[1]);
  H = n_head;
  hd = static_cast<int>(C3 / (3 * n_head));
  if (hd > 256) fail("cuda ", op, ": head dim ", hd, " > 256 is not supported");
  if (int64_t(B) * H > 65535) fail("cuda ", op, ": B*H = ", int64_t(B) * H, " exceeds 65535");
}

void CudaOps::attention_forward_impl(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                                     int n_head) {
  const char* op = "attention_forward";
  require_cuda(out, op, "out");
  require_cuda(lse, op, "lse");
  require_cuda(qkv, op, "qkv");
  int B, T_, H, hd;
  attention_dims(qkv, n_head, op, B, T_, H, hd);
  if (lse.dtype != DType::f32) fail("cuda ", op, ": lse must be f32 [B, H, T]");
  if (out.dtype != qkv.dtype) fail("cuda ", op, ": out and qkv must share a dtype");
  if (int64_t(B) * T_ == 0) return;
  // bf16: cuDNN's tensor-core fused attention where available (attention_cudnn.h).
  if (qkv.dtype == DType::bf16 &&
      cudnn_attention().forward(out.data, static_cast<float*>(lse.data), qkv.data, B, T_, H, hd,
                                stream_))
    return;
  dispatch_fb(qkv.dtype, op, [&](auto t) {
    using T = decltype(t);
    if (hd <= 32) launch_fwd<32, T>(out, lse, qkv, B, T_, H, hd, stream_);
    else if (hd <= 64) launch_fwd<64, T>(out, lse, qkv, B, T_, H, hd, stream_);
    else if (hd <= 128) launch_fwd<128, T>(out, lse, qkv, B, T_, H, hd, stream_);
    else launch_fwd<256, T>(out, lse, qkv, B, T_, H, hd, stream_);
  });
}

}  // namespace mousse
