// RMSNorm forward/backward, the fused residual-add + RMSNorm, and the fused QK-Norm + RoPE.
// One warp per normalised row (model rows of C, or head vectors of hd); f32 arithmetic.
#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"
#include "vec.cuh"

namespace mousse {
using namespace cuda;

namespace {

constexpr float kRmsEps = 1e-6f;
constexpr int kWarpsPerBlock = 8;

// The row kernels below: one warp per row; lane `lane` owns the VEC-element vectors
// k = lane, lane + 32, ... of the row (16-byte accesses when VEC = kVec). Pass 1 reduces, pass 2
// re-reads the *inputs* (the same elements by the same thread, so still L1/L2-hot) and writes.
// No pass reads back an output, so outputs may alias inputs (each element is read before its
// owner thread writes it).

template <int VEC, class To, class Ti>
__global__ void rmsnorm_fwd_kernel(To* out, float* rstd, const Ti* inp, int64_t N, int C) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const Ti* x = inp + row * C;
  const int nv = C / VEC;
  float ss = 0.f;
#pragma unroll 4
  for (int k = lane; k < nv; k += 32) {
    float v[VEC];
    load_vec<VEC>(v, x + k * VEC);
#pragma unroll
    for (int i = 0; i < VEC; i++) ss += v[i] * v[i];
  }
  ss = warp_sum(ss);
  const float r = 1.f / sqrtf(ss / C + kRmsEps);
  To* y = out + row * C;
#pragma unroll 4
  for (int k = lane; k < nv; k += 32) {
    float v[VEC];
    load_vec<VEC>(v, x + k * VEC);
#pragma unroll
    for (int i = 0; i < VEC; i++) v[i] *= r;
    store_vec<VEC>(y + k * VEC, v);
  }
  if (lane == 0) rstd[row] = r;
}

// res_out = res_in + delta (rounded to Tr), then RMSNorm of the stored res_out. res_out may alias
// res_in: pass 1 only reads; pass 2 recomputes the sum from the inputs, then writes both outputs.
template <int VEC, class Tr, class Td, class To>
__global__ void add_rmsnorm_fwd_kernel(Tr* res_out, To* norm_out, float* rstd, const Tr* res_in,
                                       const Td* delta, int64_t N, int C) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const Tr* a = res_in + row * C;
  const Td* d = delta + row * C;
  const int nv = C / VEC;
  // The sum as stored (rounded to Tr), as f32.
  auto stored_sum = [&](float (&s)[VEC], int k) {
    float dv[VEC];
    load_vec<VEC>(s, a + k * VEC);
    load_vec<VEC>(dv, d + k * VEC);
#pragma unroll
    for (int i = 0; i < VEC; i++) {
      const Tr t = to_elem<Tr>(s[i] + dv[i]);
      s[i] = ld(&t, 0);
    }
  };
  float ss = 0.f;
#pragma unroll 4
  for (int k = lane; k < nv; k += 32) {
    float s[VEC];
    stored_sum(s, k);
#pragma unroll
    for (int i = 0; i < VEC; i++) ss += s[i] * s[i];
  }
  ss = warp_sum(ss);
  const float r = 1.f / sqrtf(ss / C + kRmsEps);
  Tr* r_out = res_out + row * C;
  To* y = norm_out + row * C;
#pragma unroll 4
  for (int k = lane; k < nv; k += 32) {
    float s[VEC];
    stored_sum(s, k);
    store_vec<VEC>(r_out + k * VEC, s);  // exact: s is already representable in Tr
#pragma unroll
    for (int i = 0; i < VEC; i++) s[i] *= r;
    store_vec<VEC>(y + k * VEC, s);
  }
  if (lane == 0) rstd[row] = r;
}

// dinp += r * dout - r³ x · sum(dout·x) / C
template <int VEC, class Td, class Tg, class Ti>
__global__ void rmsnorm_bwd_kernel(Td* dinp, const Tg* dout, const Ti* inp, const float* rstd,
                                   int64_t N, int C) {
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;
  const Tg* g = dout + row * C;
  const Ti* x = inp + row * C;
  const int nv = C / VEC;
  const float r = rstd[row];
  float dot = 0.f;
#pragma unroll 4
  for (int k = lane; k < nv; k += 32) {
    float gv[VEC], xv[VEC];
    load_vec<VEC>(gv, g + k * VEC);
    load_vec<VEC>(xv, x + k * VEC);
#pragma unroll
    for (int i = 0; i < VEC; i++) dot += gv[i] * xv[i];
  }
  dot = warp_sum(dot);
  const float kk = r * r * r * dot / C;
  Td* dx = dinp + row * C;
#pragma unroll 4
  for (int k = lane; k < nv; k += 32) {
    float gv[VEC], xv[VEC], dv[VEC];
    load_vec<VEC>(gv, g + k * VEC);
    load_vec<VEC>(xv, x + k * VEC);
    load_vec<VEC>(dv, dx + k * VEC);
#pragma unroll
    for (int i = 0; i < VEC; i++) dv[i] = dv[i] + r * gv[i] - kk * xv[i];
    store_vec<VEC>(dx + k * VEC, dv);
  }
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

// QK-Norm + RoPE: a group of G lanes (a power of two <= 32, so groups never straddle a warp) per
// (row, slot): slots [0, 2H) are the q then k heads (offset slot*hd in the row), slots [2H, 3H)
// the v heads (copied). Lane j of a group owns the vectors i = j*VEC, (j+G)*VEC, ... of the first
// half of the head and the matching ones of the second half (RoPE pairs i and i + hd/2); for
// hd = 128 and VEC = 8 that is G = 8 lanes, one 16-byte vector of each half per lane. All lanes
// of a warp take part in the group reductions (no early return).
struct HeadGroup {
  int64_t w;  // (row, slot) index, row * 3H + slot
  int j;      // lane within the group
  bool active;
};
__device__ __forceinline__ HeadGroup head_group(int log2g, int64_t n_slots) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  HeadGroup h;
  h.w = t >> log2g;
  h.j = static_cast<int>(t & ((1 << log2g) - 1));
  h.active = h.w < n_slots;
  return h;
}
__device__ __forceinline__ float group_sum(float v, int g) {
  for (int o = g >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int VEC, class To, class Ti>
__global__ void qknorm_rope_fwd_kernel(To* out, float* rstd, const Ti* inp, const float2* table,
                                       int64_t rows, int T, int H, int hd, int log2g) {
  const HeadGroup hg = head_group(log2g, rows * 3 * H);
  const int G = 1 << log2g, half = hd / 2;
  const int64_t row = hg.w / (3 * H);
  const int slot = static_cast<int>(hg.w - row * 3 * H);
  const int64_t base = row * 3 * int64_t(H) * hd + int64_t(slot) * hd;
  const Ti* x = inp + base;
  To* y = out + base;
  const bool is_qk = hg.active && slot < 2 * H;
  if (hg.active && !is_qk) {  // v head: copy
    for (int d = hg.j * VEC; d < hd; d += G * VEC) {
      float v[VEC];
      load_vec<VEC>(v, x + d);
      store_vec<VEC>(y + d, v);
    }
  }
  float ss = 0.f;
  if (is_qk)
    for (int i = hg.j * VEC; i < half; i += G * VEC) {
      float a[VEC], b[VEC];
      load_vec<VEC>(a, x + i);
      load_vec<VEC>(b, x + i + half);
#pragma unroll
      for (int e = 0; e < VEC; e++) ss += a[e] * a[e] + b[e] * b[e];
    }
  ss = group_sum(ss, G);
  if (!is_qk) return;
  const float r = 1.f / sqrtf(ss / hd + kRmsEps);
  const float2* cs = table + int64_t(row % T) * half;
  for (int i = hg.j * VEC; i < half; i += G * VEC) {
    float a[VEC], b[VEC], ya[VEC], yb[VEC];
    load_vec<VEC>(a, x + i);  // second read: L1-hot
    load_vec<VEC>(b, x + i + half);
    const Vec<float2, VEC> e = *reinterpret_cast<const Vec<float2, VEC>*>(cs + i);  // (cos, sin)
#pragma unroll
    for (int u = 0; u < VEC; u++) {
      const float an = a[u] * r, bn = b[u] * r;
      ya[u] = an * e.e[u].x - bn * e.e[u].y;
      yb[u] = an * e.e[u].y + bn * e.e[u].x;
    }
    store_vec<VEC>(y + i, ya);
    store_vec<VEC>(y + i + half, yb);
  }
  if (hg.j == 0) rstd[row * 2 * H + slot] = r;
}

template <int VEC, class Td, class Tg, class Ti>
__global__ void qknorm_rope_bwd_kernel(Td* dinp, const Tg* dout, const Ti* inp, const float* rstd,
                                       const float2* table, int64_t rows, int T, int H, int hd,
                                       int log2g) {
  const HeadGroup hg = head_group(log2g, rows * 3 * H);
  const int G = 1 << log2g, half = hd / 2;
  const int64_t row = hg.w / (3 * H);
  const int slot = static_cast<int>(hg.w - row * 3 * H);
  const int64_t base = row * 3 * int64_t(H) * hd + int64_t(slot) * hd;
  const Tg* g = dout + base;
  const Ti* x = inp + base;
  Td* dx = dinp + base;
  const bool is_qk = hg.active && slot < 2 * H;
  if (hg.active && !is_qk) {  // v head: the gradient passes through
    for (int d = hg.j * VEC; d < hd; d += G * VEC) {
      float v[VEC];
      load_vec<VEC>(v, g + d);
      store_vec<VEC>(dx + d, v);
    }
  }
  const float2* cs = table + int64_t(row % T) * half;
  // dn = Rᵀ g (gradient w.r.t. the normalised vector), then RMSNorm backward over hd.
  auto rotate_back = [&](float (&da)[VEC], float (&db)[VEC], int i) {
    float ga[VEC], gb[VEC];
    load_vec<VEC>(ga, g + i);
    load_vec<VEC>(gb, g + i + half);
    const Vec<float2, VEC> e = *reinterpret_cast<const Vec<float2, VEC>*>(cs + i);
#pragma unroll
    for (int u = 0; u < VEC; u++) {
      da[u] = ga[u] * e.e[u].x + gb[u] * e.e[u].y;
      db[u] = -ga[u] * e.e[u].y + gb[u] * e.e[u].x;
    }
  };
  float dot = 0.f;
  if (is_qk)
    for (int i = hg.j * VEC; i < half; i += G * VEC) {
      float da[VEC], db[VEC], xa[VEC], xb[VEC];
      rotate_back(da, db, i);
      load_vec<VEC>(xa, x + i);
      load_vec<VEC>(xb, x + i + half);
#pragma unroll
      for (int u = 0; u < VEC; u++) dot += da[u] * xa[u] + db[u] * xb[u];
    }
  dot = group_sum(dot, G);
  if (!is_qk) return;
  const float r = rstd[row * 2 * H + slot];
  const float k = r * r * r * dot / hd;
  for (int i = hg.j * VEC; i < half; i += G * VEC) {
    float da[VEC], db[VEC], xa[VEC], xb[VEC];
    rotate_back(da, db, i);  // second read: L1-hot
    load_vec<VEC>(xa, x + i);
    load_vec<VEC>(xb, x + i + half);
#pragma unroll
    for (int u = 0; u < VEC; u++) {
      da[u] = r * da[u] - k * xa[u];
      db[u] = r * db[u] - k * xb[u];
    }
    store_vec<VEC>(dx + i, da);
    store_vec<VEC>(dx + i + half, db);
  }
}

// Lanes per head group: enough for one vector of each half per lane, at most a warp.
int head_group_log2(int hd, int vec) {
  const int chunks = hd / 2 / vec;
  int l = 0;
  while (l < 5 && (1 << l) < chunks) l++;
  return l;
}

unsigned warp_grid(int64_t warps) {
  return static_cast<unsigned>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

constexpr int kGroupThreads = 256;
// Blocks for `n_slots` head groups of 2^log2g lanes each.
unsigned group_grid(int64_t n_slots, int log2g) {
  const int64_t threads = n_slots << log2g;
  return static_cast<unsigned>((threads + kGroupThreads - 1) / kGroupThreads);
}

void require_f32(const Tensor& t, const char* op, const char* what) {
  if (t.dtype != DType::f32)
    fail("cuda ", op, ": '", what, "' must be f32, got ", dtype_name(t.dtype));
}

struct QkvDims {
  int64_t B, T, rows;
  int H, hd;
};

// qkv [B, T, 3C] with n_head dividing C and an even head dim: checked by the Ops front.
QkvDims qkv_dims(const Tensor& qkv, int n_head) {
  QkvDims d;
  d.B = qkv.shape[0];
  d.T = qkv.shape[1];
  d.rows = d.B * d.T;
  const int64_t C3 = qkv.shape[2];
  d.H = n_head;
  d.hd = static_cast<int>(C3 / (3 * n_head));
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

void CudaOps::rmsnorm_forward_impl(const Tensor& out, const Tensor& rstd, const Tensor& inp) {
  require_cuda(out, "rmsnorm_forward", "out");
  require_cuda(rstd, "rmsnorm_forward", "rstd");
  require_cuda(inp, "rmsnorm_forward", "inp");
  require_f32(rstd, "rmsnorm_forward", "rstd");
  const int64_t N = inp.rows();
  const int C = static_cast<int>(inp.cols());
  if (N == 0) return;
  dispatch_fb(out.dtype, "rmsnorm_forward", [&](auto to) {
    using To = decltype(to);
    dispatch_fb(inp.dtype, "rmsnorm_forward", [&](auto ti) {
      using Ti = decltype(ti);
      auto* y = static_cast<To*>(out.data);
      auto* r = static_cast<float*>(rstd.data);
      auto* x = static_cast<const Ti*>(inp.data);
      if (vec_ok(y, C, sizeof(To)) && vec_ok(x, C, sizeof(Ti)))
        rmsnorm_fwd_kernel<kVec, To, Ti><<<warp_grid(N), 32 * kWarpsPerBlock, 0, stream_>>>(y, r, x, N, C);
      else
        rmsnorm_fwd_kernel<1, To, Ti><<<warp_grid(N), 32 * kWarpsPerBlock, 0, stream_>>>(y, r, x, N, C);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::add_rmsnorm_forward_impl(const Tensor& res_out, const Tensor& norm_out,
                                       const Tensor& rstd, const Tensor& res_in,
                                       const Tensor& delta) {
  const char* op = "add_rmsnorm_forward";
  require_cuda(res_out, op, "res_out");
  require_cuda(norm_out, op, "norm_out");
  require_cuda(rstd, op, "rstd");
  require_cuda(res_in, op, "res_in");
  require_cuda(delta, op, "delta");
  require_f32(rstd, op, "rstd");
  if (res_out.dtype != res_in.dtype)
    fail("cuda ", op, ": res_out and res_in must share a dtype");
  const int64_t N = res_in.rows();
  const int C = static_cast<int>(res_in.cols());
  if (N == 0) return;
  dispatch_fb(res_out.dtype, op, [&](auto tr) {
    using Tr = decltype(tr);
    dispatch_fb(delta.dtype, op, [&](auto td) {
      using Td = decltype(td);
      dispatch_fb(norm_out.dtype, op, [&](auto to) {
        using To = decltype(to);
        auto* ro = static_cast<Tr*>(res_out.data);
        auto* y = static_cast<To*>(norm_out.data);
        auto* r = static_cast<float*>(rstd.data);
        auto* a = static_cast<const Tr*>(res_in.data);
        auto* dl = static_cast<const Td*>(delta.data);
        if (vec_ok(ro, C, sizeof(Tr)) && vec_ok(y, C, sizeof(To)) && vec_ok(a, C, sizeof(Tr)) &&
            vec_ok(dl, C, sizeof(Td)))
          add_rmsnorm_fwd_kernel<kVec, Tr, Td, To><<<warp_grid(N), 32 * kWarpsPerBlock, 0, stream_>>>(
              ro, y, r, a, dl, N, C);
        else
          add_rmsnorm_fwd_kernel<1, Tr, Td, To><<<warp_grid(N), 32 * kWarpsPerBlock, 0, stream_>>>(
              ro, y, r, a, dl, N, C);
        CUDA_CHECK_LAUNCH();
      });
    });
  });
}

void CudaOps::rmsnorm_backward_impl(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                                    const Tensor& rstd) {
  const char* op = "rmsnorm_backward";
  require_cuda(dinp, op, "dinp");
  require_cuda(dout, op, "dout");
  require_cuda(inp, op, "inp");
  require_cuda(rstd, op, "rstd");
  require_f32(rstd, op, "rstd");
  const int64_t N = inp.rows();
  const int C = static_cast<int>(inp.cols());
  if (N == 0) return;
  dispatch_fb(dinp.dtype, op, [&](auto td) {
    using Td = decltype(td);
    dispatch_fb(dout.dtype, op, [&](auto tg) {
      using Tg = decltype(tg);
      dispatch_fb(inp.dtype, op, [&](auto ti) {
        using Ti = decltype(ti);
        auto* dx = static_cast<Td*>(dinp.data);
        auto* g = static_cast<const Tg*>(dout.data);
        auto* x = static_cast<const Ti*>(inp.data);
        auto* r = static_cast<const float*>(rstd.data);
        if (vec_ok(dx, C, sizeof(Td)) && vec_ok(g, C, sizeof(Tg)) && vec_ok(x, C, sizeof(Ti)))
          rmsnorm_bwd_kernel<kVec, Td, Tg, Ti><<<warp_grid(N), 32 * kWarpsPerBlock, 0, stream_>>>(
              dx, g, x, r, N, C);
        else
          rmsnorm_bwd_kernel<1, Td, Tg, Ti><<<warp_grid(N), 32 * kWarpsPerBlock, 0, stream_>>>(
              dx, g, x, r, N, C);
        CUDA_CHECK_LAUNCH();
      });
    });
  });
}

void CudaOps::qknorm_rope_forward_impl(const Tensor& qkv_out, const Tensor& rstd,
                                       const Tensor& qkv_in, int n_head, float rope_base) {
  const char* op = "qknorm_rope_forward";
  require_cuda(qkv_out, op, "qkv_out");
  require_cuda(rstd, op, "rstd");
  require_cuda(qkv_in, op, "qkv_in");
  require_f32(rstd, op, "rstd");
  const QkvDims d = qkv_dims(qkv_in, n_head);
  if (d.rows == 0) return;
  const float2* table = static_cast<const float2*>(rope_table(d.T, d.hd, rope_base));
  dispatch_fb(qkv_out.dtype, op, [&](auto to) {
    using To = decltype(to);
    dispatch_fb(qkv_in.dtype, op, [&](auto ti) {
      using Ti = decltype(ti);
      auto* y = static_cast<To*>(qkv_out.data);
      auto* r = static_cast<float*>(rstd.data);
      auto* x = static_cast<const Ti*>(qkv_in.data);
      const int T = static_cast<int>(d.T), half = d.hd / 2;
      if (vec_ok(y, half, sizeof(To)) && vec_ok(x, half, sizeof(Ti))) {
        const int lg = head_group_log2(d.hd, kVec);
        qknorm_rope_fwd_kernel<kVec, To, Ti><<<group_grid(d.rows * 3 * d.H, lg), kGroupThreads, 0, stream_>>>(
            y, r, x, table, d.rows, T, d.H, d.hd, lg);
      } else {
        const int lg = head_group_log2(d.hd, 1);
        qknorm_rope_fwd_kernel<1, To, Ti><<<group_grid(d.rows * 3 * d.H, lg), kGroupThreads, 0, stream_>>>(
            y, r, x, table, d.rows, T, d.H, d.hd, lg);
      }
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::qknorm_rope_backward_impl(const Tensor& dqkv_in, const Tensor& dqkv_out,
                                        const Tensor& qkv_in, const Tensor& rstd, int n_head,
                                        float rope_base) {
  const char* op = "qknorm_rope_backward";
  require_cuda(dqkv_in, op, "dqkv_in");
  require_cuda(dqkv_out, op, "dqkv_out");
  require_cuda(qkv_in, op, "qkv_in");
  require_cuda(rstd, op, "rstd");
  require_f32(rstd, op, "rstd");
  const QkvDims d = qkv_dims(qkv_in, n_head);
  if (d.rows == 0) return;
  const float2* table = static_cast<const float2*>(rope_table(d.T, d.hd, rope_base));
  dispatch_fb(dqkv_in.dtype, op, [&](auto td) {
    using Td = decltype(td);
    dispatch_fb(dqkv_out.dtype, op, [&](auto tg) {
      using Tg = decltype(tg);
      dispatch_fb(qkv_in.dtype, op, [&](auto ti) {
        using Ti = decltype(ti);
        auto* dx = static_cast<Td*>(dqkv_in.data);
        auto* g = static_cast<const Tg*>(dqkv_out.data);
        auto* x = static_cast<const Ti*>(qkv_in.data);
        auto* r = static_cast<const float*>(rstd.data);
        const int T = static_cast<int>(d.T), half = d.hd / 2;
        if (vec_ok(dx, half, sizeof(Td)) && vec_ok(g, half, sizeof(Tg)) && vec_ok(x, half, sizeof(Ti))) {
          const int lg = head_group_log2(d.hd, kVec);
          qknorm_rope_bwd_kernel<kVec, Td, Tg, Ti><<<group_grid(d.rows * 3 * d.H, lg), kGroupThreads, 0, stream_>>>(
              dx, g, x, r, table, d.rows, T, d.H, d.hd, lg);
        } else {
          const int lg = head_group_log2(d.hd, 1);
          qknorm_rope_bwd_kernel<1, Td, Tg, Ti><<<group_grid(d.rows * 3 * d.H, lg), kGroupThreads, 0, stream_>>>(
              dx, g, x, r, table, d.rows, T, d.H, d.hd, lg);
        }
        CUDA_CHECK_LAUNCH();
      });
    });
  });
}

}  // namespace mousse
