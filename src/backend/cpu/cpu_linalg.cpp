// Linear algebra for the matrix optimizers (Mousse, SOAP, Muon): symmetric eigendecomposition,
// thin QR, diagonal scalings, elementwise powers, trace, transpose, row/column gathers, column
// dot products, batched Cholesky and triangular solves.
#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"

namespace mousse {

using namespace cpu;

namespace {

// ?syevd with the workspace sizes LAPACK documents for JOBZ = 'V' (lwork 1 + 6n + 2n², liwork
// 3 + 5n), not LAPACKE's workspace query: the query returns lwork in a float for ssyevd, which
// rounds 1 + 6n + 2n² down above 2^24 (n >= 2897), and LAPACK then rejects the workspace.
template <class T, class F>
lapack_int syevd_with_workspace(F&& work_fn, T* a, lapack_int n, T* w) {
  const lapack_int lwork = 1 + 6 * n + 2 * n * n, liwork = 3 + 5 * n;
  std::vector<T> work(static_cast<size_t>(lwork));
  std::vector<lapack_int> iwork(static_cast<size_t>(liwork));
  return work_fn(LAPACK_ROW_MAJOR, 'V', 'L', n, a, n, w, work.data(), lwork, iwork.data(),
                 liwork);
}
lapack_int syevd(double* a, lapack_int n, double* w) {
  return syevd_with_workspace(LAPACKE_dsyevd_work, a, n, w);
}
lapack_int syevd(float* a, lapack_int n, float* w) {
  return syevd_with_workspace(LAPACKE_ssyevd_work, a, n, w);
}
lapack_int geqrf(double* a, lapack_int m, lapack_int n, double* tau) {
  return LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, m, n, a, n, tau);
}
lapack_int geqrf(float* a, lapack_int m, lapack_int n, float* tau) {
  return LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, m, n, a, n, tau);
}
lapack_int orgqr(double* a, lapack_int m, lapack_int n, const double* tau) {
  return LAPACKE_dorgqr(LAPACK_ROW_MAJOR, m, n, n, a, n, tau);
}
lapack_int orgqr(float* a, lapack_int m, lapack_int n, const float* tau) {
  return LAPACKE_sorgqr(LAPACK_ROW_MAJOR, m, n, n, a, n, tau);
}

}  // namespace

// LAPACK ?syevd on the lower triangle (row-major). Returns 0 on success, LAPACK's info (> 0)
// if it did not converge, -1 if the lower triangle holds a non-finite value.
int CpuOps::eigh_impl(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a) {
  const char* op = "eigh";
  check_float(op, "a", a);
  check_dtype(op, "eigenvectors", eigenvectors, "a", a);
  check_dtype(op, "eigenvalues", eigenvalues, "a", a);
  check_not_empty(op, "a", a);
  const int64_t n = a.shape[0];
  int result = 0;
  dispatch_float(op, a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.ptr<T>();
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j <= i; j++)
        if (!std::isfinite(pa[i * n + j])) {
          result = -1;
          return;
        }
    T* q = eigenvectors.ptr<T>();
    if (q != pa) std::memcpy(q, pa, a.bytes());
    const lapack_int info = syevd(q, lapack_int(n), eigenvalues.ptr<T>());
    if (info < 0) fail(op, ": LAPACK ?syevd rejected argument ", -info, " (n = ", n, ")");
    result = int(info);
  });
  return result;
}

// Thin Householder QR via ?geqrf + ?orgqr; column j of Q is negated where R[j, j] < 0 so that
// diag(R) >= 0 (the factorisation is then unique for full-rank a).
void CpuOps::qr_orthonormal_impl(const Tensor& q, const Tensor& a) {
  const char* op = "qr_orthonormal";
  check_float(op, "a", a);
  check_dtype(op, "q", q, "a", a);
  check_not_empty(op, "a", a);
  const int64_t m = a.rows(), n = a.cols();
  dispatch_float(op, a.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* pq = q.ptr<T>();
    const T* pa = a.ptr<T>();
    if (!std::all_of(pa, pa + a.numel(), [](T x) { return std::isfinite(x); })) {
      // LAPACKE would reject it; a non-finite q (as on the GPU) lets the caller see it
      std::fill(pq, pq + q.numel(), std::numeric_limits<T>::quiet_NaN());
      return;
    }
    if (pq != pa) std::memcpy(pq, pa, a.bytes());
    thread_local std::vector<T> tau_buf;
    thread_local std::vector<bool> flip;
    T* tau = grow(tau_buf, size_t(n));
    lapack_int info = geqrf(pq, lapack_int(m), lapack_int(n), tau);
    if (info != 0) fail(op, ": LAPACK ?geqrf failed with info ", info, " for a ", a.shape.str());
    flip.assign(size_t(n), false);
    for (int64_t j = 0; j < n; j++) flip[size_t(j)] = pq[j * n + j] < T(0);  // R in the upper triangle
    info = orgqr(pq, lapack_int(m), lapack_int(n), tau);
    if (info != 0) fail(op, ": LAPACK ?orgqr failed with info ", info, " for a ", a.shape.str());
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++)
        if (flip[size_t(j)]) pq[i * n + j] = -pq[i * n + j];
  });
}

void CpuOps::scale_rows_cols_impl(const Tensor& out, const Tensor& inp, const Tensor& row_scale,
                                  const Tensor& col_scale) {
  const char* op = "scale_rows_cols";
  check_float(op, "inp", inp);
  check_dtype(op, "out", out, "inp", inp);
  const int64_t R = inp.rows(), C = inp.cols();
  // a 3-D inp: b matrices of m rows, matrix k's column scales at col_scale[k·C]
  const int64_t m = inp.shape.ndim == 3 ? inp.shape[1] : R;
  if (row_scale.defined()) check_dtype(op, "row_scale", row_scale, "inp", inp);
  if (col_scale.defined()) check_dtype(op, "col_scale", col_scale, "inp", inp);
  dispatch_float(op, inp.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = inp.ptr<T>();
    T* y = out.ptr<T>();  // may alias x (elementwise)
    const T* rs = row_scale.defined() ? row_scale.ptr<T>() : nullptr;
    const T* cs = col_scale.defined() ? col_scale.ptr<T>() : nullptr;
#pragma omp parallel for schedule(static) if (R * C >= kParallelMin)
    for (int64_t i = 0; i < R; i++) {
      const T r = rs ? rs[i] : T(1);
      const T* c = cs ? cs + (i / m) * C : nullptr;
      for (int64_t j = 0; j < C; j++) y[i * C + j] = x[i * C + j] * r * (c ? c[j] : T(1));
    }
  });
}

void CpuOps::pow_clamped_impl(const Tensor& out, const Tensor& inp, double exponent,
                              double floor) {
  const char* op = "pow_clamped";
  check_float(op, "inp", inp);
  check_dtype(op, "out", out, "inp", inp);
  const int64_t n = inp.numel();
  dispatch_float(op, inp.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = inp.ptr<T>();
    T* y = out.ptr<T>();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; i++) y[i] = T(std::pow(std::max(double(x[i]), floor), exponent));
  });
}

void CpuOps::add_to_diagonal_impl(const Tensor& a, double value) {
  const char* op = "add_to_diagonal";
  check_float(op, "a", a);
  check_not_empty(op, "a", a);
  const int64_t n = a.shape[0];
  dispatch_float(op, a.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = a.ptr<T>();
    for (int64_t i = 0; i < n; i++) p[i * n + i] = T(double(p[i * n + i]) + value);
  });
}

double CpuOps::trace_impl(const Tensor& a) {
  const char* op = "trace";
  check_float(op, "a", a);
  check_not_empty(op, "a", a);
  const int64_t n = a.shape[0];
  double t = 0.0;
  dispatch_float(op, a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* p = a.ptr<T>();
    for (int64_t i = 0; i < n; i++) t += double(p[i * n + i]);
  });
  return t;
}

void CpuOps::transpose_impl(const Tensor& out, const Tensor& inp) {
  const char* op = "transpose";
  check_float(op, "inp", inp);
  check_dtype(op, "out", out, "inp", inp);
  const int64_t m = inp.rows(), n = inp.cols();
  dispatch_float(op, inp.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = inp.ptr<T>();
    T* y = out.ptr<T>();
    constexpr int64_t kTile = 32;  // tiles keep both the reads and the writes cache-friendly
#pragma omp parallel for schedule(static) if (m * n >= kParallelMin)
    for (int64_t i0 = 0; i0 < m; i0 += kTile)
      for (int64_t j0 = 0; j0 < n; j0 += kTile)
        for (int64_t i = i0; i < std::min(m, i0 + kTile); i++)
          for (int64_t j = j0; j < std::min(n, j0 + kTile); j++) y[j * m + i] = x[i * n + j];
  });
}

namespace {
void check_index(const char* op, const Tensor& index, int64_t bound, const char* what) {
  check_i32(op, "index", index);
  const int32_t* idx = index.ptr<int32_t>();
  for (int64_t k = 0; k < index.numel(); k++)
    if (idx[k] < 0 || idx[k] >= bound)
      fail(op, ": index[", k, "] = ", idx[k], " is outside the ", bound, " ", what, " of inp");
}
}  // namespace

void CpuOps::gather_columns_impl(const Tensor& out, const Tensor& inp, const Tensor& index) {
  const char* op = "gather_columns";
  check_float(op, "inp", inp);
  check_dtype(op, "out", out, "inp", inp);
  const int64_t R = inp.rows(), Cin = inp.cols(), Cout = index.numel();
  check_index(op, index, Cin, "columns");
  const int32_t* idx = index.ptr<int32_t>();
  dispatch_float(op, inp.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = inp.ptr<T>();
    T* y = out.ptr<T>();
#pragma omp parallel for schedule(static) if (R * Cout >= kParallelMin)
    for (int64_t i = 0; i < R; i++)
      for (int64_t j = 0; j < Cout; j++) y[i * Cout + j] = x[i * Cin + idx[j]];
  });
}

void CpuOps::gather_rows_impl(const Tensor& out, const Tensor& inp, const Tensor& index) {
  const char* op = "gather_rows";
  check_float(op, "inp", inp);
  check_dtype(op, "out", out, "inp", inp);
  const int64_t Rin = inp.rows(), C = inp.cols(), Rout = index.numel();
  check_index(op, index, Rin, "rows");
  const int32_t* idx = index.ptr<int32_t>();
  dispatch_float(op, inp.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = inp.ptr<T>();
    T* y = out.ptr<T>();
#pragma omp parallel for schedule(static) if (Rout * C >= kParallelMin)
    for (int64_t i = 0; i < Rout; i++) std::copy(x + idx[i] * C, x + (idx[i] + 1) * C, y + i * C);
  });
}

void CpuOps::column_dots_impl(const Tensor& out, const Tensor& a, const Tensor& b) {
  const char* op = "column_dots";
  check_float(op, "a", a);
  check_dtype(op, "b", b, "a", a);
  check_dtype(op, "out", out, "a", a);
  const int64_t m = a.rows(), n = a.cols();
  dispatch_float(op, a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T *x = a.ptr<T>(), *y = b.ptr<T>();
    std::vector<double> acc(size_t(n), 0.0);
    for (int64_t i = 0; i < m; i++)  // row by row: both inputs are read contiguously
      for (int64_t j = 0; j < n; j++) acc[size_t(j)] += double(x[i * n + j]) * double(y[i * n + j]);
    T* o = out.ptr<T>();
    for (int64_t j = 0; j < n; j++) o[j] = T(acc[size_t(j)]);
  });
}

namespace {
lapack_int potrf_upper(double* a, lapack_int n) {
  return LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', n, a, n);
}
lapack_int potrf_upper(float* a, lapack_int n) {
  return LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'U', n, a, n);
}
void trsm_right_upper(int64_t m, int64_t n, const double* r, double* x) {
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, int(m), int(n),
              1.0, r, int(n), x, int(n));
}
void trsm_right_upper(int64_t m, int64_t n, const float* r, float* x) {
  cblas_strsm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, int(m), int(n),
              1.0f, r, int(n), x, int(n));
}

}  // namespace

// LAPACK ?potrf ('U', row-major) per slice: a = Rᵀ R, R upper; the strict lower triangle is
// zeroed so that the slice IS R. Status: LAPACK's info (> 0: not positive definite), -1 when
// the upper triangle holds a non-finite value.
std::vector<int> CpuOps::cholesky_batched_impl(const Tensor& a) {
  const char* op = "cholesky_batched";
  check_float(op, "a", a);
  const SquareStack sq = square_stack(op, "a", a);  // (checked by the front: the dimensions)
  const int64_t b = sq.batch, n = sq.n;
  std::vector<int> status(size_t(b), 0);
  dispatch_float(op, a.dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t k = 0; k < b; k++) {
      T* p = a.ptr<T>() + k * n * n;
      auto upper_finite = [&] {
        for (int64_t i = 0; i < n; i++)
          for (int64_t j = i; j < n; j++)
            if (!std::isfinite(p[i * n + j])) return false;
        return true;
      };
      if (!upper_finite()) {
        status[size_t(k)] = -1;
        continue;
      }
      const lapack_int info = potrf_upper(p, lapack_int(n));
      if (info < 0) fail(op, ": LAPACK ?potrf rejected argument ", -info, " (n = ", n, ")");
      status[size_t(k)] = int(info);
      for (int64_t i = 1; i < n; i++) std::fill(p + i * n, p + i * n + i, T(0));
    }
  });
  return status;
}

void CpuOps::solve_upper_right_batched_impl(const Tensor& x, const Tensor& r) {
  const char* op = "solve_upper_right_batched";
  check_float(op, "x", x);
  check_dtype(op, "r", r, "x", x);
  const SquareStack sq = square_stack(op, "r", r);  // (checked by the front: the dimensions)
  const int64_t b = sq.batch, n = sq.n, m = solve_rows(op, x, r, sq);
  dispatch_float(op, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t k = 0; k < b; k++)
      trsm_right_upper(m, n, r.ptr<T>() + k * n * n, x.ptr<T>() + k * m * n);
  });
}

}  // namespace mousse
