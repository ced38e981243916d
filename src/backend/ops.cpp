// The Ops fronts: each checks what the op's contract (backend/ops.h) fixes about its arguments,
// whatever the backend (shapes, element counts, slice splits, aliasing, hyper-parameter ranges),
// then calls the backend's implementation. Dtypes, devices and the values inside the tensors are
// the backends' to check: what each supports differs, and reading the data is theirs.
#include <cmath>

#include "backend/op_checks.h"
#include "backend/ops.h"

namespace mousse {

namespace {

// A ComputeCopy other than none or p itself has p's element count.
void check_compute_copy(const char* op, const Tensor& p, const ComputeCopy& copy) {
  if (copy.dst.defined() && copy.dst.data != p.data)
    check_same_numel(op, "copy.dst", copy.dst, "p", p);
}

void check_bias_corrections(const char* op, double bc1, double bc2) {
  if (!(bc1 > 0.0) || !(bc2 > 0.0))
    fail(op, ": bias corrections (", bc1, ", ", bc2, ") must be > 0 (1 - beta^t with t >= 1)");
}

// RMSNorm normalises rows of C > 0 elements.
void check_rows(const char* op, const char* what, const Tensor& t) {
  if (t.cols() == 0) fail(op, ": ", what, " ", t.shape.str(), " is empty: rows of 0 elements");
}

QkvDims check_rope(const char* op, const Tensor& qkv, int n_head, float rope_base) {
  const QkvDims d = qkv_dims(op, qkv, n_head);
  if (d.hd % 2 != 0) fail(op, ": head dim ", d.hd, " must be even for RoPE (pairs i, i + hd/2)");
  if (!(rope_base > 0.f) || !std::isfinite(rope_base))
    fail(op, ": rope_base ", rope_base, " must be a positive finite number");
  return d;
}

// One row of out per token, of wte's width.
void check_embedding(const char* op, const char* rows_what, const Tensor& rows,
                     const char* wte_what, const Tensor& wte, const Tensor& tokens) {
  if (rows.cols() != wte.cols())
    fail(op, ": ", rows_what, " ", rows.shape.str(), " and ", wte_what, " ", wte.shape.str(),
         " differ in width");
  check_numel(op, "tokens", tokens, rows.rows(), "one per row");
}

}  // namespace

// ---------------------------------------------------------------- elementwise and reductions
void Ops::fill(const Tensor& x, double value) { fill_impl(x, value); }

void Ops::copy(const Tensor& dst, const Tensor& src) {
  check_same_numel("copy", "dst", dst, "src", src);
  copy_impl(dst, src);
}

void Ops::copy_stochastic(const Tensor& dst, const Tensor& src, uint64_t seed) {
  check_same_numel("copy_stochastic", "dst", dst, "src", src);
  copy_stochastic_impl(dst, src, seed);
}

void Ops::scale(const Tensor& x, double alpha) { scale_impl(x, alpha); }

void Ops::axpby(const Tensor& y, double a, const Tensor& x, double b) {
  check_same_numel("axpby", "y", y, "x", x);
  axpby_impl(y, a, x, b);
}

double Ops::sum(const Tensor& x) { return sum_impl(x); }
double Ops::sum_squares(const Tensor& x) { return sum_squares_impl(x); }

// ---------------------------------------------------------------- GEMM
void Ops::matmul(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                 double alpha, double beta) {
  gemm_dims("matmul", out, a, trans_a, b, trans_b, /*batched=*/false);
  matmul_impl(out, a, trans_a, b, trans_b, alpha, beta);
}

void Ops::matmul_batched(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                         bool trans_b, double alpha, double beta) {
  gemm_dims("matmul_batched", out, a, trans_a, b, trans_b, /*batched=*/true);
  matmul_batched_impl(out, a, trans_a, b, trans_b, alpha, beta);
}

void Ops::matmul_tf32(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                      bool trans_b, double alpha, double beta) {
  gemm_dims("matmul_tf32", out, a, trans_a, b, trans_b, /*batched=*/false);
  matmul_tf32_impl(out, a, trans_a, b, trans_b, alpha, beta);
}

// ---------------------------------------------------------------- model: forward
void Ops::embedding_forward(const Tensor& out, const Tensor& wte, const Tensor& tokens) {
  check_embedding("embedding_forward", "out", out, "wte", wte, tokens);
  embedding_forward_impl(out, wte, tokens);
}

void Ops::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp) {
  const char* op = "rmsnorm_forward";
  check_rows(op, "inp", inp);
  check_same_shape(op, "out", out, "inp", inp);
  check_numel(op, "rstd", rstd, inp.rows(), "one per row of inp");
  rmsnorm_forward_impl(out, rstd, inp);
}

void Ops::add_rmsnorm_forward(const Tensor& res_out, const Tensor& norm_out, const Tensor& rstd,
                              const Tensor& res_in, const Tensor& delta) {
  const char* op = "add_rmsnorm_forward";
  check_rows(op, "res_in", res_in);
  check_same_shape(op, "delta", delta, "res_in", res_in);
  check_same_shape(op, "res_out", res_out, "res_in", res_in);
  check_same_shape(op, "norm_out", norm_out, "res_in", res_in);
  check_numel(op, "rstd", rstd, res_in.rows(), "one per row of res_in");
  add_rmsnorm_forward_impl(res_out, norm_out, rstd, res_in, delta);
}

void Ops::qknorm_rope_forward(const Tensor& qkv_out, const Tensor& rstd, const Tensor& qkv_in,
                              int n_head, float rope_base) {
  const char* op = "qknorm_rope_forward";
  const QkvDims d = check_rope(op, qkv_in, n_head, rope_base);
  check_same_numel(op, "qkv_out", qkv_out, "qkv_in", qkv_in);
  check_numel(op, "rstd", rstd, d.B * d.T * 2 * d.H, "[B*T, 2H]: q then k per head");
  qknorm_rope_forward_impl(qkv_out, rstd, qkv_in, n_head, rope_base);
}

void Ops::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, int n_head) {
  const char* op = "attention_forward";
  const QkvDims d = qkv_dims(op, qkv, n_head);
  check_numel(op, "out", out, d.B * d.T * d.C, "[B, T, C]");
  check_numel(op, "lse", lse, d.B * d.H * d.T, "[B, H, T]");
  attention_forward_impl(out, lse, qkv, n_head);
}

void Ops::relu2_forward(const Tensor& out, const Tensor& inp) {
  check_same_numel("relu2_forward", "out", out, "inp", inp);
  relu2_forward_impl(out, inp);
}

void Ops::classifier(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                     int64_t vocab_size, double grad_scale, bool compute_grad) {
  const char* op = "classifier";
  const int64_t N = logits.rows(), Vp = logits.cols();
  if (vocab_size <= 0 || vocab_size > Vp)
    fail(op, ": vocab_size ", vocab_size, " must be in [1, ", Vp,
         "] (the logits' padded width)");
  check_numel(op, "losses", losses, N, "one per row of logits");
  check_numel(op, "targets", targets, N, "one per row of logits");
  classifier_impl(losses, logits, targets, vocab_size, grad_scale, compute_grad);
}

// ---------------------------------------------------------------- model: backward
void Ops::embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens) {
  check_embedding("embedding_backward", "dout", dout, "dwte", dwte, tokens);
  embedding_backward_impl(dwte, dout, tokens);
}

void Ops::rmsnorm_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                           const Tensor& rstd) {
  const char* op = "rmsnorm_backward";
  check_rows(op, "inp", inp);
  check_same_shape(op, "dinp", dinp, "inp", inp);
  check_same_shape(op, "dout", dout, "inp", inp);
  check_numel(op, "rstd", rstd, inp.rows(), "one per row of inp");
  rmsnorm_backward_impl(dinp, dout, inp, rstd);
}

void Ops::qknorm_rope_backward(const Tensor& dqkv_in, const Tensor& dqkv_out,
                               const Tensor& qkv_in, const Tensor& rstd, int n_head,
                               float rope_base) {
  const char* op = "qknorm_rope_backward";
  const QkvDims d = check_rope(op, qkv_in, n_head, rope_base);
  check_same_numel(op, "dqkv_in", dqkv_in, "qkv_in", qkv_in);
  check_same_numel(op, "dqkv_out", dqkv_out, "qkv_in", qkv_in);
  check_numel(op, "rstd", rstd, d.B * d.T * 2 * d.H, "[B*T, 2H]: q then k per head");
  qknorm_rope_backward_impl(dqkv_in, dqkv_out, qkv_in, rstd, n_head, rope_base);
}

void Ops::attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                             const Tensor& out, const Tensor& lse, int n_head) {
  const char* op = "attention_backward";
  const QkvDims d = qkv_dims(op, qkv, n_head);
  check_same_numel(op, "dqkv", dqkv, "qkv", qkv);
  check_numel(op, "dout", dout, d.B * d.T * d.C, "[B, T, C]");
  check_numel(op, "out", out, d.B * d.T * d.C, "[B, T, C]");
  check_numel(op, "lse", lse, d.B * d.H * d.T, "[B, H, T]");
  check_no_alias(op, "dqkv", dqkv, "qkv", qkv);
  check_no_alias(op, "dqkv", dqkv, "dout", dout);
  attention_backward_impl(dqkv, dout, qkv, out, lse, n_head);
}

void Ops::relu2_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  check_same_numel("relu2_backward", "dinp", dinp, "inp", inp);
  check_same_numel("relu2_backward", "dout", dout, "inp", inp);
  relu2_backward_impl(dinp, dout, inp);
}

// ---------------------------------------------------------------- optimizers: elementwise
void Ops::adamw_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                       const AdamWArgs& args, const ComputeCopy& copy) {
  const char* op = "adamw_update";
  check_same_numel(op, "g", g, "p", p);
  check_same_numel(op, "m", m, "p", p);
  check_same_numel(op, "v", v, "p", p);
  check_bias_corrections(op, args.bias_correction1, args.bias_correction2);
  check_compute_copy(op, p, copy);
  adamw_update_impl(p, g, m, v, args, copy);
}

void Ops::lion_update(const Tensor& p, const Tensor& g, const Tensor& m, const LionArgs& args,
                      const ComputeCopy& copy) {
  const char* op = "lion_update";
  check_same_numel(op, "g", g, "p", p);
  check_same_numel(op, "m", m, "p", p);
  check_compute_copy(op, p, copy);
  lion_update_impl(p, g, m, args, copy);
}

// ---------------------------------------------------------------- optimizers: linear algebra
int Ops::eigh(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a) {
  const char* op = "eigh";
  check_square(op, "a", a);
  const int64_t n = a.shape[0];
  if (eigenvectors.rows() != n || eigenvectors.cols() != n)
    fail(op, ": eigenvectors ", eigenvectors.shape.str(), " must be [", n, ", ", n, "] like a ",
         a.shape.str());
  check_numel(op, "eigenvalues", eigenvalues, n, "one per row of a");
  return eigh_impl(eigenvectors, eigenvalues, a);
}

void Ops::qr_orthonormal(const Tensor& q, const Tensor& a) {
  const char* op = "qr_orthonormal";
  if (a.rows() < a.cols())
    fail(op, ": a ", a.shape.str(), " must be an [m, n] matrix with m >= n");
  check_same_shape(op, "q", q, "a", a);
  qr_orthonormal_impl(q, a);
}

void Ops::scale_rows_cols(const Tensor& out, const Tensor& inp, const Tensor& row_scale,
                          const Tensor& col_scale) {
  const char* op = "scale_rows_cols";
  check_same_shape(op, "out", out, "inp", inp);
  // a 3-D inp: b matrices, each with its own column scales
  const int64_t b = inp.shape.ndim == 3 ? inp.shape[0] : 1;
  if (row_scale.defined())
    check_numel(op, "row_scale", row_scale, inp.rows(), "one per row of inp");
  if (col_scale.defined())
    check_numel(op, "col_scale", col_scale, b * inp.cols(),
                "one per column of each matrix of inp");
  scale_rows_cols_impl(out, inp, row_scale, col_scale);
}

void Ops::pow_clamped(const Tensor& out, const Tensor& inp, double exponent, double floor) {
  check_same_numel("pow_clamped", "out", out, "inp", inp);
  pow_clamped_impl(out, inp, exponent, floor);
}

void Ops::add_to_diagonal(const Tensor& a, double value) {
  check_square("add_to_diagonal", "a", a);
  add_to_diagonal_impl(a, value);
}

double Ops::trace(const Tensor& a) {
  check_square("trace", "a", a);
  return trace_impl(a);
}

void Ops::transpose(const Tensor& out, const Tensor& inp) {
  const char* op = "transpose";
  const int64_t m = inp.rows(), n = inp.cols();
  if (out.rows() != n || out.cols() != m)
    fail(op, ": out ", out.shape.str(), " must be [", n, ", ", m, "], the transpose of inp ",
         inp.shape.str());
  check_no_alias(op, "out", out, "inp", inp);
  transpose_impl(out, inp);
}

void Ops::gather_columns(const Tensor& out, const Tensor& inp, const Tensor& index) {
  const char* op = "gather_columns";
  const int64_t R = inp.rows(), k = index.numel();
  if (out.rows() != R || out.cols() != k)
    fail(op, ": out ", out.shape.str(), " must be [", R, ", ", k,
         "] (inp's rows, one column per index)");
  check_no_alias(op, "out", out, "inp", inp);
  gather_columns_impl(out, inp, index);
}

void Ops::gather_rows(const Tensor& out, const Tensor& inp, const Tensor& index) {
  const char* op = "gather_rows";
  const int64_t k = index.numel(), C = inp.cols();
  if (out.rows() != k || out.cols() != C)
    fail(op, ": out ", out.shape.str(), " must be [", k, ", ", C,
         "] (one row per index, inp's columns)");
  check_no_alias(op, "out", out, "inp", inp);
  gather_rows_impl(out, inp, index);
}

void Ops::column_dots(const Tensor& out, const Tensor& a, const Tensor& b) {
  const char* op = "column_dots";
  if (b.rows() != a.rows() || b.cols() != a.cols())
    fail(op, ": b ", b.shape.str(), " must have a's shape ", a.shape.str());
  if (out.numel() != a.cols())
    fail(op, ": out ", out.shape.str(), " must hold ", a.cols(), " values (a's columns)");
  column_dots_impl(out, a, b);
}

void Ops::ema_square(const Tensor& v, const Tensor& x, double beta) {
  check_same_numel("ema_square", "x", x, "v", v);
  ema_square_impl(v, x, beta);
}

void Ops::adam_direction(const Tensor& out, const Tensor& m, const Tensor& v, double eps,
                         double bias_correction1, double bias_correction2) {
  const char* op = "adam_direction";
  check_same_numel(op, "m", m, "out", out);
  check_same_numel(op, "v", v, "out", out);
  check_bias_corrections(op, bias_correction1, bias_correction2);
  adam_direction_impl(out, m, v, eps, bias_correction1, bias_correction2);
}

// ---------------------------------------------------------------- optimizers: device scalars
void Ops::sum_squares_batched(const Tensor& out, const Tensor& x) {
  slice_length("sum_squares_batched", x, out.numel(), "out");
  sum_squares_batched_impl(out, x);
}

void Ops::trace_to(const Tensor& out, const Tensor& a) {
  check_numel("trace_to", "out", out, 1, "one scalar");
  check_square("trace_to", "a", a);
  trace_to_impl(out, a);
}

void Ops::scale_by_ratio(const Tensor& x, const Tensor& num, const Tensor& den, double power,
                         double c, double alpha, double eps) {
  const char* op = "scale_by_ratio";
  slice_length(op, x, den.numel(), "den");
  if (num.defined()) check_same_numel(op, "num", num, "den", den);
  scale_by_ratio_impl(x, num, den, power, c, alpha, eps);
}

std::vector<int> Ops::eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                                   const Tensor& a) {
  check_eigh_batched("eigh_batched", eigenvectors, eigenvalues, a);
  return eigh_batched_impl(eigenvectors, eigenvalues, a);
}

std::vector<int> Ops::cholesky_batched(const Tensor& a) {
  square_stack("cholesky_batched", "a", a);
  return cholesky_batched_impl(a);
}

void Ops::solve_upper_right_batched(const Tensor& x, const Tensor& r) {
  const char* op = "solve_upper_right_batched";
  solve_rows(op, x, r, square_stack(op, "r", r));
  check_no_alias(op, "x", x, "r", r);
  solve_upper_right_batched_impl(x, r);
}

}  // namespace mousse
