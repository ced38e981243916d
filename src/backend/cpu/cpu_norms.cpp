// RMSNorm (no gain), fused residual add + RMSNorm, and QK-Norm + RoPE (docs/architecture.md, "The model").
//
//   rmsnorm(x) = x * r,  r = 1 / sqrt(mean(x²) + 1e-6)   (sum of squares accumulated in double)
//   backward:   dx = r dy - (r³ / C) x Σ(dy ∘ x)
//
//   RoPE ("rotate half", +angle): for i < hd/2, θ = t · base^(−2i/hd), x1 = x[i], x2 = x[i+hd/2]
//     x1' = x1 cos θ − x2 sin θ,   x2' = x2 cos θ + x1 sin θ
//   backward (the transpose rotation):
//     dx1 = dx1' cos θ + dx2' sin θ,  dx2 = dx2' cos θ − dx1' sin θ
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"

namespace mousse {

using namespace cpu;

namespace {

// r = 1 / sqrt(mean(x²) + eps), accumulated in double.
template <class T>
double inv_rms(const T* x, int64_t n) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; i++) ss += double(x[i]) * double(x[i]);
  return 1.0 / std::sqrt(ss / double(n) + kRmsNormEps);
}

// y = x * r
template <class T>
void normalize(T* y, const T* x, T r, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * r;
}

// dx (=) r dy - (r³ / n) x Σ(dy ∘ x); used (+=) by rmsnorm_backward via `accumulate`.
template <class T>
void rmsnorm_grad(T* dx, const T* dy, const T* x, T r, int64_t n, bool accumulate) {
  double dot = 0.0;
  for (int64_t i = 0; i < n; i++) dot += double(dy[i]) * double(x[i]);
  const T c = T(double(r) * double(r) * double(r) * dot / double(n));
  for (int64_t i = 0; i < n; i++) {
    const T g = r * dy[i] - c * x[i];
    dx[i] = accumulate ? dx[i] + g : g;
  }
}


}  // namespace

void CpuOps::rmsnorm_forward_impl(const Tensor& out, const Tensor& rstd, const Tensor& inp) {
  const char* op = "rmsnorm_forward";
  check_float(op, "inp", inp);
  check_dtype(op, "out", out, "inp", inp);
  check_dtype(op, "rstd", rstd, "inp", inp);
  check_not_empty(op, "inp", inp);
  const int64_t N = inp.rows(), C = inp.cols();
  dispatch_float(op, inp.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = inp.ptr<T>();
    T* y = out.ptr<T>();
    T* rs = rstd.ptr<T>();
#pragma omp parallel for schedule(dynamic, kRowChunk) if (N * C >= kParallelMin)
    for (int64_t n = 0; n < N; n++) {
      const T r = T(inv_rms(x + n * C, C));
      normalize(y + n * C, x + n * C, r, C);
      rs[n] = r;
    }
  });
}

void CpuOps::add_rmsnorm_forward_impl(const Tensor& res_out, const Tensor& norm_out,
                                      const Tensor& rstd, const Tensor& res_in,
                                      const Tensor& delta) {
  const char* op = "add_rmsnorm_forward";
  check_float(op, "res_in", res_in);
  check_dtype(op, "delta", delta, "res_in", res_in);
  check_dtype(op, "res_out", res_out, "res_in", res_in);
  check_dtype(op, "norm_out", norm_out, "res_in", res_in);
  check_dtype(op, "rstd", rstd, "res_in", res_in);
  check_not_empty(op, "res_in", res_in);
  const int64_t N = res_in.rows(), C = res_in.cols();
  dispatch_float(op, res_in.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* a = res_in.ptr<T>();
    const T* d = delta.ptr<T>();
    T* r_out = res_out.ptr<T>();  // may alias res_in: each element is read before it is written
    T* y = norm_out.ptr<T>();
    T* rs = rstd.ptr<T>();
#pragma omp parallel for schedule(dynamic, kRowChunk) if (N * C >= kParallelMin)
    for (int64_t n = 0; n < N; n++) {
      T* row = r_out + n * C;
      for (int64_t c = 0; c < C; c++) row[c] = a[n * C + c] + d[n * C + c];
      const T r = T(inv_rms(row, C));  // normalise the stored (rounded) residual
      normalize(y + n * C, row, r, C);
      rs[n] = r;
    }
  });
}

void CpuOps::rmsnorm_backward_impl(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                                   const Tensor& rstd) {
  const char* op = "rmsnorm_backward";
  check_float(op, "inp", inp);
  check_dtype(op, "dinp", dinp, "inp", inp);
  check_dtype(op, "dout", dout, "inp", inp);
  check_dtype(op, "rstd", rstd, "inp", inp);
  check_not_empty(op, "inp", inp);
  const int64_t N = inp.rows(), C = inp.cols();
  dispatch_float(op, inp.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = inp.ptr<T>();
    const T* dy = dout.ptr<T>();
    const T* rs = rstd.ptr<T>();
    T* dx = dinp.ptr<T>();
#pragma omp parallel for schedule(dynamic, kRowChunk) if (N * C >= kParallelMin)
    for (int64_t n = 0; n < N; n++)
      rmsnorm_grad(dx + n * C, dy + n * C, x + n * C, rs[n], C, /*accumulate=*/true);
  });
}

// ------------------------------------------------------------------ QK-Norm + RoPE

namespace {

// cos/sin of θ(t, i) = t · base^(−2i/hd) for t < T, i < hd/2, computed in double (identical
// angles for the f32 and f64 paths). Cached per thread: rebuilt only when (T, hd, base) change.
struct RopeTable {
  int64_t T = -1, hd = -1;
  double base = 0.0;
  std::vector<double> cos_, sin_;  // [T, hd/2]

  void build(int64_t T_, int64_t hd_, double base_) {
    if (T_ == T && hd_ == hd && base_ == base) return;
    T = T_, hd = hd_, base = base_;
    const int64_t half = hd / 2;
    cos_.resize(size_t(T * half));
    sin_.resize(size_t(T * half));
    for (int64_t i = 0; i < half; i++) {
      const double inv_freq = std::pow(base, -2.0 * double(i) / double(hd));
      for (int64_t t = 0; t < T; t++) {
        const double angle = double(t) * inv_freq;
        cos_[size_t(t * half + i)] = std::cos(angle);
        sin_[size_t(t * half + i)] = std::sin(angle);
      }
    }
  }
};

const RopeTable& rope_table(int64_t T, int64_t hd, float rope_base) {
  thread_local RopeTable table;
  table.build(T, hd, double(rope_base));
  return table;
}

}  // namespace

void CpuOps::qknorm_rope_forward_impl(const Tensor& qkv_out, const Tensor& rstd,
                                      const Tensor& qkv_in, int n_head, float rope_base) {
  const char* op = "qknorm_rope_forward";
  check_float(op, "qkv_in", qkv_in);
  check_dtype(op, "qkv_out", qkv_out, "qkv_in", qkv_in);
  check_dtype(op, "rstd", rstd, "qkv_in", qkv_in);
  check_not_empty(op, "qkv_in", qkv_in);
  const QkvDims d = qkv_dims(op, qkv_in, n_head);
  const RopeTable& rope = rope_table(d.T, d.hd, rope_base);
  const int64_t N = d.B * d.T, C = d.C, H = d.H, hd = d.hd, half = hd / 2;
  dispatch_float(op, qkv_in.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = qkv_in.ptr<T>();
    T* out = qkv_out.ptr<T>();
    T* rs = rstd.ptr<T>();
#pragma omp parallel for schedule(dynamic, kRowChunk) if (N * 3 * C >= kParallelMin)
    for (int64_t n = 0; n < N; n++) {
      const int64_t t = n % d.T;
      const double* cs = rope.cos_.data() + t * half;
      const double* sn = rope.sin_.data() + t * half;
      for (int64_t part = 0; part < 2; part++) {  // q, k
        for (int64_t h = 0; h < H; h++) {
          const T* x = in + n * 3 * C + part * C + h * hd;
          T* y = out + n * 3 * C + part * C + h * hd;  // may alias x: pairs are read first
          const T r = T(inv_rms(x, hd));
          rs[n * 2 * H + part * H + h] = r;
          for (int64_t i = 0; i < half; i++) {
            const T x1 = x[i] * r, x2 = x[i + half] * r;
            const T c = T(cs[i]), s = T(sn[i]);
            y[i] = x1 * c - x2 * s;
            y[i + half] = x2 * c + x1 * s;
          }
        }
      }
      for (int64_t c = 0; c < C; c++) out[n * 3 * C + 2 * C + c] = in[n * 3 * C + 2 * C + c];
    }
  });
}

void CpuOps::qknorm_rope_backward_impl(const Tensor& dqkv_in, const Tensor& dqkv_out,
                                       const Tensor& qkv_in, const Tensor& rstd, int n_head,
                                       float rope_base) {
  const char* op = "qknorm_rope_backward";
  check_float(op, "qkv_in", qkv_in);
  check_dtype(op, "dqkv_in", dqkv_in, "qkv_in", qkv_in);
  check_dtype(op, "dqkv_out", dqkv_out, "qkv_in", qkv_in);
  check_dtype(op, "rstd", rstd, "qkv_in", qkv_in);
  check_not_empty(op, "qkv_in", qkv_in);
  const QkvDims d = qkv_dims(op, qkv_in, n_head);
  const RopeTable& rope = rope_table(d.T, d.hd, rope_base);
  const int64_t N = d.B * d.T, C = d.C, H = d.H, hd = d.hd, half = hd / 2;
  dispatch_float(op, qkv_in.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = qkv_in.ptr<T>();
    const T* dout = dqkv_out.ptr<T>();
    T* dinp = dqkv_in.ptr<T>();
    const T* rs = rstd.ptr<T>();
#pragma omp parallel for schedule(dynamic, kRowChunk) if (N * 3 * C >= kParallelMin)
    for (int64_t n = 0; n < N; n++) {
      thread_local std::vector<T> dn_buf;  // gradient w.r.t. the normalised head vector
      T* dn = grow(dn_buf, size_t(hd));
      const int64_t t = n % d.T;
      const double* cs = rope.cos_.data() + t * half;
      const double* sn = rope.sin_.data() + t * half;
      for (int64_t part = 0; part < 2; part++) {
        for (int64_t h = 0; h < H; h++) {
          const int64_t off = n * 3 * C + part * C + h * hd;
          const T* dy = dout + off;
          for (int64_t i = 0; i < half; i++) {  // undo the rotation
            const T c = T(cs[i]), s = T(sn[i]);
            dn[i] = dy[i] * c + dy[i + half] * s;
            dn[i + half] = dy[i + half] * c - dy[i] * s;
          }
          rmsnorm_grad(dinp + off, dn, in + off, rs[n * 2 * H + part * H + h], hd,
                       /*accumulate=*/false);
        }
      }
      for (int64_t c = 0; c < C; c++) dinp[n * 3 * C + 2 * C + c] = dout[n * 3 * C + 2 * C + c];
    }
  });
}

}  // namespace mousse
