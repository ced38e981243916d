// RMSNorm forward/backward, the fused residual-add + RMSNorm, and the fused QK-Norm + RoPE.
// One warp per normalised row (model rows of C, or head vectors of hd); f32 arithmetic.
#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"

namespace mousse {
using namespace cuda;

namespace {

constexpr float kRmsEps = 1e-6f;
constexpr int kWarpsPerBlock = 8;

template <class To, class Ti>
__global__ void rmsnorm_fwd_kernel(To* out, float* rstd, const Ti* inp, int64_t N, int C) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const Ti* x = inp + row * C;
  float ss = 0.f;
  for (int c = lane; c < C; c += 32) {
    float v = ld(x, c);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float r = 1.f / sqrtf(ss / C + kRmsEps);
  To* y = out + row * C;
  for (int c = lane; c < C; c += 32) st(y, c, ld(x, c) * r);
  if (lane == 0) rstd[row] = r;
}

// res_out = res_in + delta (rounded to Tr), then RMSNorm of the stored res_out.
template <class Tr, class Td, class To>
__global__ void add_rmsnorm_fwd_kernel(Tr* res_out, To* norm_out, float* rstd, const Tr* res_in,
                                       const Td* delta, int64_t N, int C) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const Tr* a = res_in + row * C;
  const Td* d = delta + row * C;
  Tr* r_out = res_out + row * C;
  float ss = 0.f;
  for (int c = lane; c < C; c += 32) {
    const Tr stored = to_elem<Tr>(ld(a, c) + ld(d, c));  // read a[c] before writing (may alias)
    r_out[c] = stored;
    const float v = ld(&stored, 0);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float r = 1.f / sqrtf(ss / C + kRmsEps);
  To* y = norm_out + row * C;
  for (int c = lane; c < C; c += 32) st(y, c, ld(r_out, c) * r);
  if (lane == 0) rstd[row] = r;
}

// dinp += r * dout - r³ x · sum(dout·x) / C
template <class Td, class Tg, class Ti>
__global__ void rmsnorm_bwd_kernel(Td* dinp, const Tg* dout, const Ti* inp, const float* rstd,
                                   int64_t N, int C) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const Tg* g = dout + row * C;
  const Ti* x = inp + row * C;
  float dot = 0.f;
  for (int c = lane; c < C; c += 32) dot += ld(g, c) * ld(x, c);
  dot = warp_sum(dot);
  const float r = rstd[row];
  const float k = r * r * r * dot / C;
  Td* dx = dinp + row * C;
  for (int c = lane; c < C; c += 32) st(dx, c, ld(dx, c) + r * ld(g, c) - k * ld(x, c));
}

__global__ void rope_table_kernel(float2* table, int64_t T, int half, int hd, double base) {
  const int64_t n = T * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = idx / half;
    const int i = static_cast<int>(idx % half);
    const double inv_freq = pow(base, -2.0 * i / hd);
    double s, c;
    sincos(double(t) * inv_freq, &s, &c);
    table[idx] = make_float2(float(c), float(s));
  }
}

// One warp per (row, slot): slots [0, 2H) are the q then k heads (offset slot*hd in the row),
// slots [2H, 3H) the v heads (copied).
template <class To, class Ti>
__global__ void qknorm_rope_fwd_kernel(To* out, float* rstd, const Ti* inp, const float2* table,
                                       int64_t rows, int T, int H, int hd) {
  const int64_t w = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (w >= rows * 3 * H) return;
  const int64_t row = w / (3 * H);
  const int slot = static_cast<int>(w % (3 * H));
  const int64_t base = row * 3 * int64_t(H) * hd + int64_t(slot) * hd;
  const Ti* x = inp + base;
  To* y = out + base;
  if (slot >= 2 * H) {
    for (int d = lane; d < hd; d += 32) st(y, d, ld(x, d));
    return;
  }
  float ss = 0.f;
  for (int d = lane; d < hd; d += 32) {
    float v = ld(x, d);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float r = 1.f / sqrtf(ss / hd + kRmsEps);
  const int half = hd / 2;
  const int t = static_cast<int>(row % T);
  const float2* cs = table + int64_t(t) * half;
  for (int i = lane; i < half; i += 32) {
    const float a = ld(x, i) * r, b = ld(x, i + half) * r;
    const float2 e = cs[i];  // (cos, sin)
    st(y, i, a * e.x - b * e.y);
    st(y, i + half, a * e.y + b * e.x);
  }
  if (lane == 0) rstd[row * 2 * H + slot] = r;
}

template <class Td, class Tg, class Ti>
__global__ void qknorm_rope_bwd_kernel(Td* dinp, const Tg* dout, const Ti* inp, const float* rstd,
                                       const float2* table, int64_t rows, int T, int H, int hd) {
  const int64_t w = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (w >= rows * 3 * H) return;
  const int64_t row = w / (3 * H);
  const int slot = static_cast<int>(w % (3 * H));
  const int64_t base = row * 3 * int64_t(H) * hd + int64_t(slot) * hd;
  const Tg* g = dout + base;
  const Ti* x = inp + base;
  Td* dx = dinp + base;
  if (slot >= 2 * H) {
    for (int d = lane; d < hd; d += 32) st(dx, d, ld(g, d));
    return;
  }
  const int half = hd / 2;
  const int t = static_cast<int>(row % T);
  const float2* cs = table + int64_t(t) * half;
  // dn = Rᵀ g (gradient w.r.t. the normalised vector), then RMSNorm backward over hd.
  float dot = 0.f;
  for (int i = lane; i < half; i += 32) {
    const float2 e = cs[i];
    const float ga = ld(g, i), gb = ld(g, i + half);
    const float da = ga * e.x + gb * e.y, db = -ga * e.y + gb * e.x;
    dot += da * ld(x, i) + db * ld(x, i + half);
  }
  dot = warp_sum(dot);
  const float r = rstd[row * 2 * H + slot];
  const float k = r * r * r * dot / hd;
  for (int i = lane; i < half; i += 32) {
    const float2 e = cs[i];
    const float ga = ld(g, i), gb = ld(g, i + half);
    const float da = ga * e.x + gb * e.y, db = -ga * e.y + gb * e.x;
    const float xa = ld(x, i), xb = ld(x, i + half);
    st(dx, i, r * da - k * xa);
    st(dx, i + half, r * db - k * xb);
  }
}

unsigned warp_grid(int64_t warps) {
  return static_cast<unsigned>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

void require_f32(const Tensor& t, const char* op, const char* what) {
  if (t.dtype != DType::f32)
    fail("cuda ", op, ": '", what, "' must be f32, got ", dtype_name(t.dtype));
}

struct QkvDims {
  int64_t B, T, rows;
  int H, hd;
};

QkvDims qkv_dims(const Tensor& qkv, int n_head, const char* op) {
  if (qkv.shape.ndim != 3)
    fail("cuda ", op, ": qkv must be 3-D [B, T, 3C], got ", qkv.shape.str());
  QkvDims d;
  d.B = qkv.shape[0];
  d.T = qkv.shape[1];
  d.rows = d.B * d.T;
  const int64_t C3 = qkv.shape[2];
  if (n_head <= 0 || C3 % (3 * int64_t(n_head)) != 0)
    fail("cuda ", op, ": qkv width ", C3, " is not 3 * n_head * hd (n_head ", n_head, ")");
  d.H = n_head;
  d.hd = static_cast<int>(C3 / (3 * n_head));
  if (d.hd % 2 != 0) fail("cuda ", op, ": head dim ", d.hd, " must be even for RoPE");
  return d;
}

}  // namespace

const void* CudaOps::rope_table(int64_t T, int hd, float base) {
  auto key = std::make_tuple(T, hd, base);
  if (rope_ && key == rope_key_) return rope_;
  const int half = hd / 2;
  const size_t bytes = size_t(T) * half * sizeof(float2);
  if (bytes > rope_bytes_) {
    if (rope_) {
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      CUDA_CHECK(cudaFree(rope_));
      rope_ = nullptr;
    }
    CUDA_CHECK(cudaMalloc(&rope_, bytes));
    rope_bytes_ = bytes;
  }
  rope_table_kernel<<<grid_for(T * half), 256, 0, stream_>>>(static_cast<float2*>(rope_), T, half,
                                                             hd, double(base));
  CUDA_CHECK_LAUNCH();
  rope_key_ = key;
  return rope_;
}

void CudaOps::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp) {
  require_cuda(out, "rmsnorm_forward", "out");
  require_cuda(rstd, "rmsnorm_forward", "rstd");
  require_cuda(inp, "rmsnorm_forward", "inp");
  require_same_numel(out, inp, "rmsnorm_forward");
  require_f32(rstd, "rmsnorm_forward", "rstd");
  const int64_t N = inp.rows();
  const int C = static_cast<int>(inp.cols());
  if (rstd.numel() != N) fail("cuda rmsnorm_forward: rstd has ", rstd.numel(), " elements, expected ", N);
  if (N == 0) return;
  dispatch_fb(out.dtype, "rmsnorm_forward", [&](auto to) {
    using To = decltype(to);
    dispatch_fb(inp.dtype, "rmsnorm_forward", [&](auto ti) {
      using Ti = decltype(ti);
      rmsnorm_fwd_kernel<To, Ti><<<warp_grid(N), 32 * kWarpsPerBlock, 0, stream_>>>(
          static_cast<To*>(out.data), static_cast<float*>(rstd.data),
          static_cast<const Ti*>(inp.data), N, C);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::add_rmsnorm_forward(const Tensor& res_out, const Tensor& norm_out, const Tensor& rstd,
                                  const Tensor& res_in, const Tensor& delta) {
  const char* op = "add_rmsnorm_forward";
  require_cuda(res_out, op, "res_out");
  require_cuda(norm_out, op, "norm_out");
  require_cuda(rstd, op, "rstd");
  require_cuda(res_in, op, "res_in");
  require_cuda(delta, op, "delta");
  require_same_numel(res_out, res_in, op);
  require_same_numel(res_out, delta, op);
  require_same_numel(res_out, norm_out, op);
  require_f32(rstd, op, "rstd");
  if (res_out.dtype != res_in.dtype)
    fail("cuda ", op, ": res_out and res_in must share a dtype");
  const int64_t N = res_in.rows();
  const int C = static_cast<int>(res_in.cols());
  if (rstd.numel() != N) fail("cuda ", op, ": rstd has ", rstd.numel(), " elements, expected ", N);
  if (N == 0) return;
  dispatch_fb(res_out.dtype, op, [&](auto tr) {
    using Tr = decltype(tr);
    dispatch_fb(delta.dtype, op, [&](auto td) {
      using Td = decltype(td);
      dispatch_fb(norm_out.dtype, op, [&](auto to) {
        using To = decltype(to);
        add_rmsnorm_fwd_kernel<Tr, Td, To><<<warp_grid(N), 32 * kWarpsPerBlock, 0, stream_>>>(
            static_cast<Tr*>(res_out.data), static_cast<To*>(norm_out.data),
            static_cast<float*>(rstd.data), static_cast<const Tr*>(res_in.data),
            static_cast<const Td*>(delta.data), N, C);
        CUDA_CHECK_LAUNCH();
      });
    });
  });
}

void CudaOps::rmsnorm_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                               const Tensor& rstd) {
  const char* op = "rmsnorm_backward";
  require_cuda(dinp, op, "dinp");
  require_cuda(dout, op, "dout");
  require_cuda(inp, op, "inp");
  require_cuda(rstd, op, "rstd");
  require_same_numel(dinp, dout, op);
  require_same_numel(dinp, inp, op);
  require_f32(rstd, op, "rstd");
  const int64_t N = inp.rows();
  const int C = static_cast<int>(inp.cols());
  if (rstd.numel() != N) fail("cuda ", op, ": rstd has ", rstd.numel(), " elements, expected ", N);
  if (N == 0) return;
  dispatch_fb(dinp.dtype, op, [&](auto td) {
    using Td = decltype(td);
    dispatch_fb(dout.dtype, op, [&](auto tg) {
      using Tg = decltype(tg);
      dispatch_fb(inp.dtype, op, [&](auto ti) {
        using Ti = decltype(ti);
        rmsnorm_bwd_kernel<Td, Tg, Ti><<<warp_grid(N), 32 * kWarpsPerBlock, 0, stream_>>>(
            static_cast<Td*>(dinp.data), static_cast<const Tg*>(dout.data),
            static_cast<const Ti*>(inp.data), static_cast<const float*>(rstd.data), N, C);
        CUDA_CHECK_LAUNCH();
      });
    });
  });
}

void CudaOps::qknorm_rope_forward(const Tensor& qkv_out, const Tensor& rstd, const Tensor& qkv_in,
                                  int n_head, float rope_base) {
  const char* op = "qknorm_rope_forward";
  require_cuda(qkv_out, op, "qkv_out");
  require_cuda(rstd, op, "rstd");
  require_cuda(qkv_in, op, "qkv_in");
  require_same_numel(qkv_out, qkv_in, op);
  require_f32(rstd, op, "rstd");
  const QkvDims d = qkv_dims(qkv_in, n_head, op);
  if (rstd.numel() != d.rows * 2 * d.H)
    fail("cuda ", op, ": rstd has ", rstd.numel(), " elements, expected [B*T, 2H] = ", d.rows * 2 * d.H);
  if (d.rows == 0) return;
  const float2* table = static_cast<const float2*>(rope_table(d.T, d.hd, rope_base));
  dispatch_fb(qkv_out.dtype, op, [&](auto to) {
    using To = decltype(to);
    dispatch_fb(qkv_in.dtype, op, [&](auto ti) {
      using Ti = decltype(ti);
      qknorm_rope_fwd_kernel<To, Ti><<<warp_grid(d.rows * 3 * d.H), 32 * kWarpsPerBlock, 0, stream_>>>(
          static_cast<To*>(qkv_out.data), static_cast<float*>(rstd.data),
          static_cast<const Ti*>(qkv_in.data), table, d.rows, static_cast<int>(d.T), d.H, d.hd);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::qknorm_rope_backward(const Tensor& dqkv_in, const Tensor& dqkv_out,
                                   const Tensor& qkv_in, const Tensor& rstd, int n_head,
                                   float rope_base) {
  const char* op = "qknorm_rope_backward";
  require_cuda(dqkv_in, op, "dqkv_in");
  require_cuda(dqkv_out, op, "dqkv_out");
  require_cuda(qkv_in, op, "qkv_in");
  require_cuda(rstd, op, "rstd");
  require_same_numel(dqkv_in, qkv_in, op);
  require_same_numel(dqkv_out, qkv_in, op);
  require_f32(rstd, op, "rstd");
  const QkvDims d = qkv_dims(qkv_in, n_head, op);
  if (rstd.numel() != d.rows * 2 * d.H)
    fail("cuda ", op, ": rstd has ", rstd.numel(), " elements, expected [B*T, 2H] = ", d.rows * 2 * d.H);
  if (d.rows == 0) return;
  const float2* table = static_cast<const float2*>(rope_table(d.T, d.hd, rope_base));
  dispatch_fb(dqkv_in.dtype, op, [&](auto td) {
    using Td = decltype(td);
    dispatch_fb(dqkv_out.dtype, op, [&](auto tg) {
      using Tg = decltype(tg);
      dispatch_fb(qkv_in.dtype, op, [&](auto ti) {
        using Ti = decltype(ti);
        qknorm_rope_bwd_kernel<Td, Tg, Ti><<<warp_grid(d.rows * 3 * d.H), 32 * kWarpsPerBlock, 0, stream_>>>(
            static_cast<Td*>(dqkv_in.data), static_cast<const Tg*>(dqkv_out.data),
            static_cast<const Ti*>(qkv_in.data), static_cast<const float*>(rstd.data), table,
            d.rows, static_cast<int>(d.T), d.H, d.hd);
        CUDA_CHECK_LAUNCH();
      });
    });
  });
}

}  // namespace mousse
