// Elementwise optimizer updates: AdamW, Lion, and the pieces SOAP-style optimizers compose
// (second-moment EMA, Adam direction). Arithmetic in double, each result rounded once to the
// state dtype.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_vec.h"

namespace mousse {

using namespace cpu;

namespace {

// The updates themselves are cpu_vec.h's adamw_range / lion_range, on chunks of the tensor.
constexpr int64_t kUpdateChunk = 1 << 16;

// Runs f(T{}, G{}) for the state dtype T of `state` and gradient dtype G (T, or f32).
template <class F>
void dispatch_state_grad(const char* op, const Tensor& state, const Tensor& g, F&& f) {
  check_float(op, "g", g);
  if (g.dtype == state.dtype)
    dispatch_float(op, state.dtype, [&](auto tag) { f(tag, tag); });
  else if (state.dtype == DType::f64 && g.dtype == DType::f32)
    f(double{}, float{});
  else
    fail(op, ": g is ", dtype_name(g.dtype), " but p is ", dtype_name(state.dtype),
         "; the gradient must be p's dtype or f32");
}

}  // namespace

// The CPU has no separate working copy (every tensor of an op shares one dtype), so a requested
// one is a plain copy of the updated weights. Its dtype is checked before the update (its size
// by the front); true when it is due.
bool CpuOps::compute_copy_due(const char* op, const Tensor& p, const ComputeCopy& copy) {
  if (!copy.dst.defined() || copy.dst.data == p.data) return false;
  check_dtype(op, "copy.dst", copy.dst, "p", p);
  return true;
}

void CpuOps::adamw_update_impl(const Tensor& p, const Tensor& g, const Tensor& m,
                               const Tensor& v, const AdamWArgs& args, const ComputeCopy& copy) {
  const char* op = "adamw_update";
  check_float(op, "p", p);
  check_dtype(op, "m", m, "p", p);
  check_dtype(op, "v", v, "p", p);
  const bool copy_due = compute_copy_due(op, p, copy);
  dispatch_state_grad(op, p, g, [&](auto t_tag, auto g_tag) {
    using T = decltype(t_tag);
    using G = decltype(g_tag);
    T *pp = p.ptr<T>(), *pm = m.ptr<T>(), *pv = v.ptr<T>();
    const G* pg = g.ptr<G>();
    parallel_chunks(p.numel(), kUpdateChunk, [&](int64_t lo, int64_t hi) {
      adamw_range(pp + lo, pg + lo, pm + lo, pv + lo, hi - lo, args);
    });
  });
  if (copy_due) copy_impl(copy.dst, p);
}

void CpuOps::lion_update_impl(const Tensor& p, const Tensor& g, const Tensor& m,
                              const LionArgs& args, const ComputeCopy& copy) {
  const char* op = "lion_update";
  check_float(op, "p", p);
  check_dtype(op, "m", m, "p", p);
  const bool copy_due = compute_copy_due(op, p, copy);
  dispatch_state_grad(op, p, g, [&](auto t_tag, auto g_tag) {
    using T = decltype(t_tag);
    using G = decltype(g_tag);
    T *pp = p.ptr<T>(), *pm = m.ptr<T>();
    const G* pg = g.ptr<G>();
    parallel_chunks(p.numel(), kUpdateChunk, [&](int64_t lo, int64_t hi) {
      lion_range(pp + lo, pg + lo, pm + lo, hi - lo, args);
    });
  });
  if (copy_due) copy_impl(copy.dst, p);
}

void CpuOps::ema_square_impl(const Tensor& v, const Tensor& x, double beta) {
  const char* op = "ema_square";
  check_float(op, "v", v);
  check_dtype(op, "x", x, "v", v);
  const int64_t n = v.numel();
  dispatch_float(op, v.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* pv = v.ptr<T>();
    const T* px = x.ptr<T>();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; i++)
      pv[i] = T(beta * double(pv[i]) + (1.0 - beta) * double(px[i]) * double(px[i]));
  });
}

void CpuOps::adam_direction_impl(const Tensor& out, const Tensor& m, const Tensor& v, double eps,
                                 double bias_correction1, double bias_correction2) {
  const char* op = "adam_direction";
  check_float(op, "out", out);
  check_dtype(op, "m", m, "out", out);
  check_dtype(op, "v", v, "out", out);
  const int64_t n = out.numel();
  dispatch_float(op, out.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* po = out.ptr<T>();
    const T* pm = m.ptr<T>();
    const T* pv = v.ptr<T>();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; i++)
      po[i] = T((double(pm[i]) / bias_correction1) /
                (std::sqrt(double(pv[i]) / bias_correction2) + eps));
  });
}

}  // namespace mousse

// ---------------------------------------------------------------- device scalars (ops.h)
namespace mousse {

using namespace cpu;

void CpuOps::sum_squares_batched_impl(const Tensor& out, const Tensor& x) {
  const char* op = "sum_squares_batched";
  check_float(op, "out", out);
  check_float(op, "x", x);
  const int64_t k = out.numel();
  const int64_t len = x.numel() / k;  // k > 0 and divides x.numel(): checked by the front
  std::vector<double> r(size_t(k), 0.0);
  dispatch_float(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.ptr<T>();
#pragma omp parallel for schedule(static) if (x.numel() >= kParallelMin && k > 1)
    for (int64_t b = 0; b < k; b++) r[size_t(b)] = block_sum_squares(p + b * len, len);
  });
  dispatch_float(op, out.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.ptr<T>();
    for (int64_t b = 0; b < k; b++) o[b] = T(r[size_t(b)]);
  });
}

void CpuOps::trace_to_impl(const Tensor& out, const Tensor& a) {
  const char* op = "trace_to";
  check_float(op, "out", out);
  const double t = trace_impl(a);
  dispatch_float(op, out.dtype, [&](auto tag) {
    using T = decltype(tag);
    out.ptr<T>()[0] = T(t);
  });
}

void CpuOps::scale_by_ratio_impl(const Tensor& x, const Tensor& num, const Tensor& den,
                                 double power, double c, double alpha, double eps) {
  const char* op = "scale_by_ratio";
  check_float(op, "x", x);
  check_float(op, "den", den);
  const int64_t k = den.numel();
  const int64_t len = x.numel() / k;  // k > 0 and divides x.numel(): checked by the front
  if (num.defined()) check_dtype(op, "num", num, "den", den);
  std::vector<double> f(size_t(k), 1.0);
  dispatch_float(op, den.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* d = den.ptr<T>();
    const T* nu = num.defined() ? num.ptr<T>() : nullptr;
    for (int64_t b = 0; b < k; b++) {
      auto pw = [&](double v) {
        return power == 1.0 ? v : power == 0.5 ? std::sqrt(v) : std::pow(v, power);
      };
      const double dv = pw(double(d[b]));
      const double denom = alpha * dv + eps;
      if (!(denom > 0.0) || !std::isfinite(denom)) continue;
      const double nv = nu ? pw(double(nu[b])) : 1.0;
      f[size_t(b)] = c * nv / denom;
    }
  });
  dispatch_float(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = x.ptr<T>();
#pragma omp parallel for schedule(static) if (x.numel() >= kParallelMin)
    for (int64_t i = 0; i < x.numel(); i++) p[i] = T(double(p[i]) * f[size_t(i / len)]);
  });
}

}  // namespace mousse

namespace mousse {

// One eigh() per slice (LAPACK has no batched driver; a is left unchanged, which the contract
// allows). Non-finite eigenvalues count as a failure, as on CUDA.
std::vector<int> CpuOps::eigh_batched_impl(const Tensor& eigenvectors, const Tensor& eigenvalues,
                                           const Tensor& a) {
  const char* op = "eigh_batched";
  check_float(op, "a", a);
  check_dtype(op, "eigenvectors", eigenvectors, "a", a);
  check_dtype(op, "eigenvalues", eigenvalues, "a", a);
  const int64_t b = a.shape[0], n = a.shape[1];
  std::vector<int> status(size_t(b), 0);
  for (int64_t i = 0; i < b; i++) {
    const Tensor w = eigenvalues.slice(i * n, Shape{n});
    int rc = eigh(eigenvectors.slice(i * n * n, Shape{n, n}), w, a.slice(i * n * n, Shape{n, n}));
    if (rc == 0)
      dispatch_float(op, w.dtype, [&](auto tag) {
        using T = decltype(tag);
        for (int64_t j = 0; j < n; j++)
          if (!std::isfinite(double(w.ptr<T>()[j]))) rc = -1000;
      });
    status[size_t(i)] = rc;
  }
  return status;
}

}  // namespace mousse
