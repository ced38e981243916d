// Causal flash-style attention backward (see attention_common.cuh for the layout).
//
// Three deterministic kernels (no atomics), P recomputed from the saved lse:
//   1. Dsum[b,h,t] = sum_d dout·out                       (one warp per row)
//   2. dQ: query-parallel like the forward; per 32-key tile, lanes own keys:
//      p = exp(s - lse), dS = p (dO·v - Dsum), dQ += dS K, scaled by 1/sqrt(hd) at the end
//   3. dK, dV: key-parallel; warps own keys, lanes own the queries of each 32-query tile:
//      dV += pᵀ dO, dK += dSᵀ Q (scaled by 1/sqrt(hd))
#include "attention_common.cuh"
#include "attention_cudnn.h"
#include "check.h"
#include "cuda_ops.h"

namespace mousse {
using namespace cuda;
using namespace cuda::attn;

void attention_dims(const Tensor& qkv, int n_head, const char* op, int& B, int& T_, int& H, int& hd);

namespace {

template <class T>
__global__ void attn_dsum_kernel(float* dsum, const T* dout, const T* out, int B, int T_, int H,
                                 int hd) {
  const int64_t w = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const int64_t nrows = int64_t(B) * H * T_;
  if (w >= nrows) return;
  // w indexes [b, h, t]
  const int t = static_cast<int>(w % T_);
  const int64_t bh = w / T_;
  const int h = static_cast<int>(bh % H), b = static_cast<int>(bh / H);
  const int64_t off = (int64_t(b) * T_ + t) * int64_t(H) * hd + int64_t(h) * hd;
  float s = 0.f;
  for (int d = lane; d < hd; d += 32) s += ld(dout, off + d) * ld(out, off + d);
  s = warp_sum(s);
  if (lane == 0) dsum[w] = s;
}

constexpr int kRpwQ = 8;
constexpr int kQB = kWarps * kRpwQ;  // 32 query rows per dQ block

template <int HDP, class T>
__global__ void __launch_bounds__(kThreads)
attn_bwd_dq_kernel(T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dsum,
                   int T_, int H, int hd, float scale_log2, float scale) {
  using D = Dims<HDP>;
  constexpr int S = D::S, NI = D::NI, N4 = D::N4;
  extern __shared__ float4 smem4[];
  float* sQ = reinterpret_cast<float*>(smem4);
  float* sdO = sQ + kQB * S;
  float* sK = sdO + kQB * S;
  float* sV = sK + 32 * S;

  const int qb = gridDim.x - 1 - blockIdx.x;
  const int bh = blockIdx.y, b = bh / H, h = bh % H;
  const int64_t C = int64_t(H) * hd, C3 = 3 * C;
  const T* qbase = qkv + int64_t(b) * T_ * C3 + int64_t(h) * hd;
  const T* dobase = dout + int64_t(b) * T_ * C + int64_t(h) * hd;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int q0 = qb * kQB;

  load_rows<HDP>(sQ, qbase, C3, q0, kQB, T_, hd);
  load_rows<HDP>(sdO, dobase, C, q0, kQB, T_, hd);

  float dq[kRpwQ][NI], lse2[kRpwQ], dd[kRpwQ];
#pragma unroll
  for (int r = 0; r < kRpwQ; r++) {
    const int qi = q0 + warp * kRpwQ + r;
    const int64_t row = (int64_t(b) * H + h) * T_ + qi;
    lse2[r] = qi < T_ ? lse[row] * kLog2e : 0.f;
    dd[r] = qi < T_ ? dsum[row] : 0.f;
#pragma unroll
    for (int i = 0; i < NI; i++) dq[r][i] = 0.f;
  }
  const int last_q = min(q0 + kQB - 1, T_ - 1);
  const int kt_end = last_q / 32;
  for (int kt = 0; kt <= kt_end; kt++) {
    __syncthreads();
    load_rows<HDP>(sK, qbase + C, C3, kt * 32, 32, T_, hd);
    load_rows<HDP>(sV, qbase + 2 * C, C3, kt * 32, 32, T_, hd);
    __syncthreads();
    const int key = kt * 32 + lane;
    float s[kRpwQ], dp[kRpwQ];
#pragma unroll
    for (int r = 0; r < kRpwQ; r++) s[r] = dp[r] = 0.f;
    const float4* k4p = reinterpret_cast<const float4*>(sK + lane * S);
    const float4* v4p = reinterpret_cast<const float4*>(sV + lane * S);
#pragma unroll 2
    for (int d4 = 0; d4 < N4; d4++) {
      const float4 k4 = k4p[d4], v4 = v4p[d4];
#pragma unroll
      for (int r = 0; r < kRpwQ; r++) {
        const float4 q4 = reinterpret_cast<const float4*>(sQ + (warp * kRpwQ + r) * S)[d4];
        const float4 g4 = reinterpret_cast<const float4*>(sdO + (warp * kRpwQ + r) * S)[d4];
        s[r] = dot4(q4, k4, s[r]);
        dp[r] = dot4(g4, v4, dp[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < kRpwQ; r++) {
      const int qi = q0 + warp * kRpwQ + r;
      const bool valid = key <= qi && qi < T_;
      const float p = valid ? exp2f(s[r] * scale_log2 - lse2[r]) : 0.f;
      s[r] = p * (dp[r] - dd[r]);  // dS
    }
#pragma unroll 4
    for (int j = 0; j < 32; j++) {
      float kv[NI];
#pragma unroll
      for (int i = 0; i < NI; i++) kv[i] = sK[j * S + lane + 32 * i];
#pragma unroll
      for (int r = 0; r < kRpwQ; r++) {
        const float dsj = __shfl_sync(0xffffffffu, s[r], j);
#pragma unroll
        for (int i = 0; i < NI; i++) dq[r][i] = fmaf(dsj, kv[i], dq[r][i]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRpwQ; r++) {
    const int qi = q0 + warp * kRpwQ + r;
    if (qi >= T_) continue;
    T* drow = dqkv + (int64_t(b) * T_ + qi) * C3 + int64_t(h) * hd;
#pragma unroll
    for (int i = 0; i < NI; i++) {
      const int d = lane + 32 * i;
      if (d < hd) st(drow, d, dq[r][i] * scale);
    }
  }
}

template <int HDP> struct KvCfg {
  static constexpr int RPW = HDP >= 256 ? 4 : 8;  // keys per warp (register budget)
  static constexpr int KB = kWarps * RPW;         // keys per block (16 or 32)
};

template <int HDP, class T>
__global__ void __launch_bounds__(kThreads)
attn_bwd_dkv_kernel(T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dsum,
                    int T_, int H, int hd, float scale_log2, float scale) {
  using D = Dims<HDP>;
  constexpr int S = D::S, NI = D::NI, N4 = D::N4;
  constexpr int RPW = KvCfg<HDP>::RPW, KB = KvCfg<HDP>::KB;
  extern __shared__ float4 smem4[];
  float* sK = reinterpret_cast<float*>(smem4);
  float* sV = sK + KB * S;
  float* sQ = sV + KB * S;
  float* sdO = sQ + 32 * S;
  float* sL = sdO + 32 * S;  // lse (log2 domain) of the 32 queries
  float* sD = sL + 32;       // Dsum of the 32 queries

  const int kb = blockIdx.x;
  const int bh = blockIdx.y, b = bh / H, h = bh % H;
  const int64_t C = int64_t(H) * hd, C3 = 3 * C;
  const T* qbase = qkv + int64_t(b) * T_ * C3 + int64_t(h) * hd;
  const T* dobase = dout + int64_t(b) * T_ * C + int64_t(h) * hd;
  const float* lrow = lse + (int64_t(b) * H + h) * T_;
  const float* drow = dsum + (int64_t(b) * H + h) * T_;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int k0 = kb * KB;

  load_rows<HDP>(sK, qbase + C, C3, k0, KB, T_, hd);
  load_rows<HDP>(sV, qbase + 2 * C, C3, k0, KB, T_, hd);

  float dk[RPW][NI], dv[RPW][NI];
#pragma unroll
  for (int r = 0; r < RPW; r++)
#pragma unroll
    for (int i = 0; i < NI; i++) dk[r][i] = dv[r][i] = 0.f;

  const int qt_begin = k0 / 32;
  const int qt_last = (T_ - 1) / 32;
  for (int qt = qt_begin; qt <= qt_last; qt++) {
    __syncthreads();
    load_rows<HDP>(sQ, qbase, C3, qt * 32, 32, T_, hd);
    load_rows<HDP>(sdO, dobase, C, qt * 32, 32, T_, hd);
    if (threadIdx.x < 32) {
      const int t = qt * 32 + threadIdx.x;
      sL[threadIdx.x] = t < T_ ? lrow[t] * kLog2e : 0.f;
      sD[threadIdx.x] = t < T_ ? drow[t] : 0.f;
    }
    __syncthreads();
    const int qi = qt * 32 + lane;
    float p[RPW], ds[RPW];
#pragma unroll
    for (int r = 0; r < RPW; r++) p[r] = ds[r] = 0.f;
    const float4* q4p = reinterpret_cast<const float4*>(sQ + lane * S);
    const float4* g4p = reinterpret_cast<const float4*>(sdO + lane * S);
#pragma unroll 2
    for (int d4 = 0; d4 < N4; d4++) {
      const float4 q4 = q4p[d4], g4 = g4p[d4];
#pragma unroll
      for (int r = 0; r < RPW; r++) {
        const float4 k4 = reinterpret_cast<const float4*>(sK + (warp * RPW + r) * S)[d4];
        const float4 v4 = reinterpret_cast<const float4*>(sV + (warp * RPW + r) * S)[d4];
        p[r] = dot4(q4, k4, p[r]);    // score
        ds[r] = dot4(g4, v4, ds[r]);  // dO·v
      }
    }
    const float l2 = sL[lane], dd = sD[lane];
#pragma unroll
    for (int r = 0; r < RPW; r++) {
      const int key = k0 + warp * RPW + r;
      const bool valid = qi < T_ && key <= qi;
      const float pr = valid ? exp2f(p[r] * scale_log2 - l2) : 0.f;
      ds[r] = pr * (ds[r] - dd);
      p[r] = pr;
    }
#pragma unroll 2
    for (int j = 0; j < 32; j++) {
      float gv[NI], qv[NI];
#pragma unroll
      for (int i = 0; i < NI; i++) {
        gv[i] = sdO[j * S + lane + 32 * i];
        qv[i] = sQ[j * S + lane + 32 * i];
      }
#pragma unroll
      for (int r = 0; r < RPW; r++) {
        const float pj = __shfl_sync(0xffffffffu, p[r], j);
        const float dsj = __shfl_sync(0xffffffffu, ds[r], j);
#pragma unroll
        for (int i = 0; i < NI; i++) {
          dv[r][i] = fmaf(pj, gv[i], dv[r][i]);
          dk[r][i] = fmaf(dsj, qv[i], dk[r][i]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < RPW; r++) {
    const int key = k0 + warp * RPW + r;
    if (key >= T_) continue;
    T* krow = dqkv + (int64_t(b) * T_ + key) * C3 + C + int64_t(h) * hd;
    T* vrow = krow + C;
#pragma unroll
    for (int i = 0; i < NI; i++) {
      const int d = lane + 32 * i;
      if (d < hd) {
        st(krow, d, dk[r][i] * scale);
        st(vrow, d, dv[r][i]);
      }
    }
  }
}

template <int HDP, class T>
void launch_bwd(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const float* lse,
                const float* dsum, int B, int T_, int H, int hd, cudaStream_t stream) {
  constexpr int S = Dims<HDP>::S;
  const float scale = 1.f / sqrtf(float(hd));
  const float scale_log2 = kLog2e * scale;
  {
    const size_t smem = sizeof(float) * size_t(2 * kQB + 64) * S;
    auto kernel = attn_bwd_dq_kernel<HDP, T>;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    dim3 grid((T_ + kQB - 1) / kQB, B * H);
    kernel<<<grid, kThreads, smem, stream>>>(static_cast<T*>(dqkv.data),
                                             static_cast<const T*>(dout.data),
                                             static_cast<const T*>(qkv.data), lse, dsum, T_, H, hd,
                                             scale_log2, scale);
    CUDA_CHECK_LAUNCH();
  }
  {
    constexpr int KB = KvCfg<HDP>::KB;
    const size_t smem = sizeof(float) * (size_t(2 * KB + 64) * S + 64);
    auto kernel = attn_bwd_dkv_kernel<HDP, T>;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    dim3 grid((T_ + KB - 1) / KB, B * H);
    kernel<<<grid, kThreads, smem, stream>>>(static_cast<T*>(dqkv.data),
                                             static_cast<const T*>(dout.data),
                                             static_cast<const T*>(qkv.data), lse, dsum, T_, H, hd,
                                             scale_log2, scale);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void CudaOps::attention_backward_impl(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                      const Tensor& out, const Tensor& lse, int n_head) {
  const char* op = "attention_backward";
  require_cuda(dqkv, op, "dqkv");
  require_cuda(dout, op, "dout");
  require_cuda(qkv, op, "qkv");
  require_cuda(out, op, "out");
  require_cuda(lse, op, "lse");
  int B, T_, H, hd;
  attention_dims(qkv, n_head, op, B, T_, H, hd);
  const int64_t nrows = int64_t(B) * H * T_;
  if (lse.dtype != DType::f32) fail("cuda ", op, ": lse must be f32 [B, H, T]");
  if (dqkv.dtype != qkv.dtype || dout.dtype != qkv.dtype || out.dtype != qkv.dtype)
    fail("cuda ", op, ": dqkv, dout, out and qkv must share a dtype");
  if (nrows == 0) return;
  if (qkv.dtype == DType::bf16 &&
      cudnn_attention().backward(dqkv.data, dout.data, qkv.data, out.data,
                                 static_cast<const float*>(lse.data), B, T_, H, hd, stream_))
    return;
  float* dsum = static_cast<float*>(scratch(sizeof(float) * nrows));
  dispatch_fb(qkv.dtype, op, [&](auto t) {
    using T = decltype(t);
    attn_dsum_kernel<T><<<static_cast<unsigned>((nrows + 7) / 8), 256, 0, stream_>>>(
        dsum, static_cast<const T*>(dout.data), static_cast<const T*>(out.data), B, T_, H, hd);
    CUDA_CHECK_LAUNCH();
    const float* l = static_cast<const float*>(lse.data);
    if (hd <= 32) launch_bwd<32, T>(dqkv, dout, qkv, l, dsum, B, T_, H, hd, stream_);
    else if (hd <= 64) launch_bwd<64, T>(dqkv, dout, qkv, l, dsum, B, T_, H, hd, stream_);
    else if (hd <= 128) launch_bwd<128, T>(dqkv, dout, qkv, l, dsum, B, T_, H, hd, stream_);
    else launch_bwd<256, T>(dqkv, dout, qkv, l, dsum, B, T_, H, hd, stream_);
  });
}

}  // namespace mousse
