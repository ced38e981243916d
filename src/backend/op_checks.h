#pragma once
// The argument checks of the Ops fronts (backend/ops.cpp), in one place: each failure names the
// op and the offending argument with its shape ("rmsnorm_forward: out [4, 8] and inp [4, 9]
// differ in shape"), so a mistake in the model or an optimizer is found at the call, with the
// same words on every backend. The CPU backend uses the helpers that return dimensions
// (qkv_dims, square_stack) for its loops as well.
#include <cstdint>

#include "core/error.h"
#include "core/tensor.h"

namespace mousse {

inline void check_same_numel(const char* op, const char* what, const Tensor& t,
                             const char* ref_what, const Tensor& ref) {
  if (t.numel() != ref.numel())
    fail(op, ": ", what, " ", t.shape.str(), " and ", ref_what, " ", ref.shape.str(),
         " differ in size (", t.numel(), " vs ", ref.numel(), " elements)");
}

// The same matrix view (rows(), cols()).
inline void check_same_shape(const char* op, const char* what, const Tensor& t,
                             const char* ref_what, const Tensor& ref) {
  if (t.rows() != ref.rows() || t.cols() != ref.cols())
    fail(op, ": ", what, " ", t.shape.str(), " and ", ref_what, " ", ref.shape.str(),
         " differ in shape");
}

inline void check_numel(const char* op, const char* what, const Tensor& t, int64_t n,
                        const char* expected) {
  if (t.numel() != n)
    fail(op, ": ", what, " ", t.shape.str(), " should have ", n, " elements (", expected, ")");
}

// An output that must not share memory with an input (an empty one shares nothing).
inline void check_no_alias(const char* op, const char* what, const Tensor& t,
                           const char* other_what, const Tensor& other) {
  if (t.data != nullptr && t.data == other.data && t.numel() > 0)
    fail(op, ": ", what, " and ", other_what, " must be different memory");
}

// a is a square matrix [n, n] (2-D).
inline void check_square(const char* op, const char* what, const Tensor& a) {
  if (a.shape.ndim != 2 || a.shape[0] != a.shape[1])
    fail(op, ": ", what, " ", a.shape.str(), " must be a square matrix [n, n]");
}

// The fused qkv layout [B, T, 3C] = (q | k | v), head h at columns h*hd .. (h+1)*hd of each C.
struct QkvDims {
  int64_t B, T, C, H, hd;
};

inline QkvDims qkv_dims(const char* op, const Tensor& qkv, int n_head) {
  if (qkv.shape.ndim != 3)
    fail(op, ": qkv ", qkv.shape.str(), " must be 3-D [B, T, 3C] (T sets the RoPE positions)");
  const int64_t B = qkv.shape[0], T = qkv.shape[1], C3 = qkv.shape[2];
  if (C3 <= 0 || C3 % 3 != 0) fail(op, ": qkv ", qkv.shape.str(), " must be [B, T, 3C] with C > 0");
  const int64_t C = C3 / 3;
  if (n_head <= 0 || C % n_head != 0)
    fail(op, ": n_head ", n_head, " does not divide the model width C = ", C);
  return {B, T, C, n_head, C / n_head};
}

// The shapes of one product out = op(a) @ op(b): op(a) is [M, K], op(b) is [K, N], out [M, N];
// each operand viewed as a matrix (rows(), cols()), or for matmul_batched as 3-D
// [batch, rows, cols] with one batch size.
struct GemmDims {
  int64_t batch;                           // 0 for a plain matmul
  int64_t a_rows, a_cols, b_rows, b_cols;  // of one matrix of a and of b, as stored
  int64_t M, N, K;
};

inline GemmDims gemm_dims(const char* op, const Tensor& out, const Tensor& a, bool trans_a,
                          const Tensor& b, bool trans_b, bool batched) {
  GemmDims d{};
  int64_t out_r, out_c;
  if (batched) {
    if (out.shape.ndim != 3 || a.shape.ndim != 3 || b.shape.ndim != 3)
      fail(op, ": out ", out.shape.str(), ", a ", a.shape.str(), ", b ", b.shape.str(),
           " must all be 3-D [batch, rows, cols]");
    d.batch = out.shape[0];
    if (a.shape[0] != d.batch || b.shape[0] != d.batch)
      fail(op, ": batch sizes differ: out ", out.shape.str(), ", a ", a.shape.str(), ", b ",
           b.shape.str());
    d.a_rows = a.shape[1], d.a_cols = a.shape[2], d.b_rows = b.shape[1], d.b_cols = b.shape[2];
    out_r = out.shape[1], out_c = out.shape[2];
  } else {
    d.a_rows = a.rows(), d.a_cols = a.cols(), d.b_rows = b.rows(), d.b_cols = b.cols();
    out_r = out.rows(), out_c = out.cols();
  }
  d.M = trans_a ? d.a_cols : d.a_rows;
  d.K = trans_a ? d.a_rows : d.a_cols;
  const int64_t Kb = trans_b ? d.b_cols : d.b_rows;
  d.N = trans_b ? d.b_rows : d.b_cols;
  if (d.K != Kb || out_r != d.M || out_c != d.N)
    fail(op, ": shapes do not multiply: out ", out.shape.str(), " = a", trans_a ? "^T " : " ",
         a.shape.str(), " @ b", trans_b ? "^T " : " ", b.shape.str(), " (op(a) is [", d.M, ", ",
         d.K, "], op(b) is [", Kb, ", ", d.N, "])");
  return d;
}

// x as k equal slices, k being the numel of the tensor named `counted` ("out", "den"); returns
// the slice length.
inline int64_t slice_length(const char* op, const Tensor& x, int64_t k, const char* counted) {
  if (k == 0 || x.numel() % k != 0)
    fail(op, ": x ", x.shape.str(), " does not split into ", counted, ".numel() = ", k,
         " slices");
  return x.numel() / k;
}

// A stack of square matrices (cholesky_batched, solve_upper_right_batched): a is [b, n, n] or
// [n, n] (b = 1); returns {b, n}.
struct SquareStack {
  int64_t batch, n;
};
inline SquareStack square_stack(const char* op, const char* what, const Tensor& a) {
  const Shape& s = a.shape;
  if (s.ndim == 2 && s[0] == s[1]) return {1, s[0]};
  if (s.ndim == 3 && s[1] == s[2]) return {s[0], s[1]};
  fail(op, ": ", what, " ", s.str(), " must be [batch, n, n] or [n, n]");
}

// x of solve_upper_right_batched for r's stack {b, n}: [b, m, n] (or [m, n] when r is 2-D);
// returns m.
inline int64_t solve_rows(const char* op, const Tensor& x, const Tensor& r, SquareStack s) {
  const bool ok = (x.shape.ndim == 3 && x.shape[0] == s.batch && x.shape[2] == s.n) ||
                  (x.shape.ndim == 2 && r.shape.ndim == 2 && x.shape[1] == s.n);
  if (!ok) fail(op, ": x ", x.shape.str(), " must be [batch, m, n] for r ", r.shape.str());
  return s.batch > 0 && s.n > 0 ? x.numel() / (s.batch * s.n) : 0;
}

// eigh_batched's arguments (also checked by CUDA's reserve_eigh_batched, which takes the same):
// a [b, n, n], eigenvectors b·n·n and eigenvalues b·n elements, eigenvectors apart from a.
inline void check_eigh_batched(const char* op, const Tensor& eigenvectors,
                               const Tensor& eigenvalues, const Tensor& a) {
  if (a.shape.ndim != 3 || a.shape[1] != a.shape[2])
    fail(op, ": a ", a.shape.str(), " must be [batch, n, n]");
  const int64_t b = a.shape[0], n = a.shape[1];
  check_numel(op, "eigenvectors", eigenvectors, b * n * n, "batch · n · n");
  check_numel(op, "eigenvalues", eigenvalues, b * n, "batch · n");
  check_no_alias(op, "eigenvectors", eigenvectors, "a", a);
}

}  // namespace mousse
