#include "backend/profiling_ops.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

namespace mousse {

namespace {
// "matmul 16384x2304x768 bf16" (M x N x K of out[M, N] = op(a)[M, K] op(b)[K, N]), batched with
// the batch in front.
std::string gemm_key(const char* op, const Tensor& out, const Tensor& a, bool trans_a,
                     int64_t batch, double& flops) {
  const bool b3 = batch > 0;
  const int64_t ar = b3 ? a.shape[1] : a.rows(), ac = b3 ? a.shape[2] : a.cols();
  const int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
  const int64_t N = b3 ? out.shape[2] : out.cols();
  flops = 2.0 * double(std::max<int64_t>(batch, 1)) * double(M) * double(N) * double(K);
  char buf[128];
  if (b3)
    std::snprintf(buf, sizeof buf, "%s %lldx%lldx%lldx%lld %s", op, (long long)batch, (long long)M,
                  (long long)N, (long long)K, dtype_name(a.dtype));
  else
    std::snprintf(buf, sizeof buf, "%s %lldx%lldx%lld %s", op, (long long)M, (long long)N,
                  (long long)K, dtype_name(a.dtype));
  return buf;
}
}  // namespace

void ProfilingOps::book(const std::string& what, std::chrono::steady_clock::time_point t0,
                        double flops) {
  inner_.synchronize();
  Row& r = rows_[{phase_, what}];
  r.calls++;
  r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.flops += flops;
}

std::string ProfilingOps::report(int64_t steps, double step_ms) const {
  const double per = 1.0 / double(std::max<int64_t>(steps, 1));
  std::vector<std::pair<std::pair<std::string, std::string>, Row>> rows(rows_.begin(), rows_.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return x.second.seconds > y.second.seconds; });
  double total = 0;
  std::map<std::string, double> by_phase;
  for (const auto& [key, r] : rows) {
    total += r.seconds;
    by_phase[key.first] += r.seconds;
  }
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-10s %-44s %8s %10s %7s %12s\n", "phase", "op", "calls",
                "ms/step", "share", "rate");
  os << line;
  for (const auto& [key, r] : rows) {
    char rate[32] = "";
    const double fs = r.seconds > 0 ? r.flops / r.seconds : 0;
    if (fs >= 1e12) std::snprintf(rate, sizeof rate, "%.1f TFLOP/s", fs / 1e12);
    else if (fs > 0) std::snprintf(rate, sizeof rate, "%.1f GFLOP/s", fs / 1e9);
    std::snprintf(line, sizeof line, "%-10s %-44s %8.1f %10.3f %6.1f%% %12s\n", key.first.c_str(),
                  key.second.c_str(), double(r.calls) * per, 1e3 * r.seconds * per,
                  total > 0 ? 100.0 * r.seconds / total : 0.0, rate);
    os << line;
  }
  for (const auto& [phase, s] : by_phase) {
    std::snprintf(line, sizeof line, "%-10s %-44s %8s %10.3f %6.1f%%\n", phase.c_str(), "(all ops)",
                  "", 1e3 * s * per, total > 0 ? 100.0 * s / total : 0.0);
    os << line;
  }
  std::snprintf(line, sizeof line, "profiled ops: %.3f ms per step", 1e3 * total * per);
  os << line;
  if (step_ms > 0) {
    std::snprintf(line, sizeof line, " (the unprofiled step: %.3f ms; the difference is the "
                  "host-device overlap the profile gives up and the host's own time)", step_ms);
    os << line;
  }
  os << "\n";
  return os.str();
}

void ProfilingOps::to_host(void* dst, const Tensor& src) {
  timed("to_host", [&] { inner_.to_host(dst, src); });
}
void ProfilingOps::from_host(const Tensor& dst, const void* src) {
  timed("from_host", [&] { inner_.from_host(dst, src); });
}
void ProfilingOps::fill(const Tensor& x, double value) {
  timed("fill", [&] { inner_.fill(x, value); });
}
void ProfilingOps::copy(const Tensor& dst, const Tensor& src) {
  timed(std::string("copy ") + dtype_name(src.dtype) + "->" + dtype_name(dst.dtype),
        [&] { inner_.copy(dst, src); });
}
void ProfilingOps::copy_stochastic(const Tensor& dst, const Tensor& src, uint64_t seed) {
  timed("copy_stochastic", [&] { inner_.copy_stochastic(dst, src, seed); });
}
void ProfilingOps::scale(const Tensor& x, double alpha) {
  timed("scale", [&] { inner_.scale(x, alpha); });
}
void ProfilingOps::axpby(const Tensor& y, double a, const Tensor& x, double b) {
  timed("axpby", [&] { inner_.axpby(y, a, x, b); });
}
double ProfilingOps::sum(const Tensor& x) {
  return timed("sum", [&] { return inner_.sum(x); });
}
double ProfilingOps::sum_squares(const Tensor& x) {
  return timed("sum_squares", [&] { return inner_.sum_squares(x); });
}
void ProfilingOps::matmul(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                          bool trans_b, double alpha, double beta) {
  double flops = 0;
  const std::string key = gemm_key("matmul", out, a, trans_a, 0, flops);
  timed(key, [&] { inner_.matmul(out, a, trans_a, b, trans_b, alpha, beta); }, flops);
}
void ProfilingOps::matmul_batched(const Tensor& out, const Tensor& a, bool trans_a,
                                  const Tensor& b, bool trans_b, double alpha, double beta) {
  double flops = 0;
  const std::string key =
      gemm_key("matmul_batched", out, a, trans_a, a.shape.ndim == 3 ? a.shape[0] : 1, flops);
  timed(key, [&] { inner_.matmul_batched(out, a, trans_a, b, trans_b, alpha, beta); }, flops);
}
void ProfilingOps::matmul_tf32(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                               bool trans_b, double alpha, double beta) {
  double flops = 0;
  const std::string key = gemm_key("matmul_tf32", out, a, trans_a, 0, flops);
  timed(key, [&] { inner_.matmul_tf32(out, a, trans_a, b, trans_b, alpha, beta); }, flops);
}
void ProfilingOps::embedding_forward(const Tensor& out, const Tensor& wte, const Tensor& tokens) {
  timed("embedding_forward", [&] { inner_.embedding_forward(out, wte, tokens); });
}
void ProfilingOps::rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp) {
  timed("rmsnorm_forward", [&] { inner_.rmsnorm_forward(out, rstd, inp); });
}
void ProfilingOps::add_rmsnorm_forward(const Tensor& res_out, const Tensor& norm_out,
                                       const Tensor& rstd, const Tensor& res_in,
                                       const Tensor& delta) {
  timed("add_rmsnorm_forward",
        [&] { inner_.add_rmsnorm_forward(res_out, norm_out, rstd, res_in, delta); });
}
void ProfilingOps::qknorm_rope_forward(const Tensor& qkv_out, const Tensor& rstd,
                                       const Tensor& qkv_in, int n_head, float rope_base) {
  timed("qknorm_rope_forward",
        [&] { inner_.qknorm_rope_forward(qkv_out, rstd, qkv_in, n_head, rope_base); });
}
void ProfilingOps::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                                     int n_head) {
  timed("attention_forward", [&] { inner_.attention_forward(out, lse, qkv, n_head); });
}
void ProfilingOps::relu2_forward(const Tensor& out, const Tensor& inp) {
  timed("relu2_forward", [&] { inner_.relu2_forward(out, inp); });
}
void ProfilingOps::classifier(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                              int64_t vocab_size, double grad_scale, bool compute_grad) {
  timed("classifier", [&] {
    inner_.classifier(losses, logits, targets, vocab_size, grad_scale, compute_grad);
  });
}
void ProfilingOps::embedding_backward(const Tensor& dwte, const Tensor& dout,
                                      const Tensor& tokens) {
  timed("embedding_backward", [&] { inner_.embedding_backward(dwte, dout, tokens); });
}
void ProfilingOps::rmsnorm_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                                    const Tensor& rstd) {
  timed("rmsnorm_backward", [&] { inner_.rmsnorm_backward(dinp, dout, inp, rstd); });
}
void ProfilingOps::qknorm_rope_backward(const Tensor& dqkv_in, const Tensor& dqkv_out,
                                        const Tensor& qkv_in, const Tensor& rstd, int n_head,
                                        float rope_base) {
  timed("qknorm_rope_backward", [&] {
    inner_.qknorm_rope_backward(dqkv_in, dqkv_out, qkv_in, rstd, n_head, rope_base);
  });
}
void ProfilingOps::attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                      const Tensor& out, const Tensor& lse, int n_head) {
  timed("attention_backward",
        [&] { inner_.attention_backward(dqkv, dout, qkv, out, lse, n_head); });
}
void ProfilingOps::relu2_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  timed("relu2_backward", [&] { inner_.relu2_backward(dinp, dout, inp); });
}
void ProfilingOps::adamw_update(const Tensor& p, const Tensor& g, const Tensor& m,
                                const Tensor& v, const AdamWArgs& args, const ComputeCopy& copy) {
  timed(copy.dst.defined() ? "adamw_update + compute copy" : "adamw_update",
        [&] { inner_.adamw_update(p, g, m, v, args, copy); });
}
void ProfilingOps::lion_update(const Tensor& p, const Tensor& g, const Tensor& m,
                               const LionArgs& args, const ComputeCopy& copy) {
  timed(copy.dst.defined() ? "lion_update + compute copy" : "lion_update",
        [&] { inner_.lion_update(p, g, m, args, copy); });
}
int ProfilingOps::eigh(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a) {
  return timed(std::string("eigh ") + a.shape.str(), [&] { return inner_.eigh(eigenvectors, eigenvalues, a); });
}
void ProfilingOps::qr_orthonormal(const Tensor& q, const Tensor& a) {
  timed(std::string("qr_orthonormal ") + a.shape.str(), [&] { inner_.qr_orthonormal(q, a); });
}
void ProfilingOps::scale_rows_cols(const Tensor& out, const Tensor& inp, const Tensor& row_scale,
                                   const Tensor& col_scale) {
  timed("scale_rows_cols", [&] { inner_.scale_rows_cols(out, inp, row_scale, col_scale); });
}
void ProfilingOps::pow_clamped(const Tensor& out, const Tensor& inp, double exponent,
                               double floor) {
  timed("pow_clamped", [&] { inner_.pow_clamped(out, inp, exponent, floor); });
}
void ProfilingOps::add_to_diagonal(const Tensor& a, double value) {
  timed("add_to_diagonal", [&] { inner_.add_to_diagonal(a, value); });
}
double ProfilingOps::trace(const Tensor& a) {
  return timed("trace", [&] { return inner_.trace(a); });
}
void ProfilingOps::transpose(const Tensor& out, const Tensor& inp) {
  timed("transpose", [&] { inner_.transpose(out, inp); });
}
void ProfilingOps::gather_columns(const Tensor& out, const Tensor& inp, const Tensor& index) {
  timed("gather_columns", [&] { inner_.gather_columns(out, inp, index); });
}
void ProfilingOps::gather_rows(const Tensor& out, const Tensor& inp, const Tensor& index) {
  timed("gather_rows", [&] { inner_.gather_rows(out, inp, index); });
}
void ProfilingOps::column_dots(const Tensor& out, const Tensor& a, const Tensor& b) {
  timed("column_dots", [&] { inner_.column_dots(out, a, b); });
}
void ProfilingOps::ema_square(const Tensor& v, const Tensor& x, double beta) {
  timed("ema_square", [&] { inner_.ema_square(v, x, beta); });
}
void ProfilingOps::adam_direction(const Tensor& out, const Tensor& m, const Tensor& v, double eps,
                                  double bias_correction1, double bias_correction2) {
  timed("adam_direction",
        [&] { inner_.adam_direction(out, m, v, eps, bias_correction1, bias_correction2); });
}
void ProfilingOps::sum_squares_batched(const Tensor& out, const Tensor& x) {
  timed("sum_squares_batched", [&] { inner_.sum_squares_batched(out, x); });
}
void ProfilingOps::trace_to(const Tensor& out, const Tensor& a) {
  timed("trace_to", [&] { inner_.trace_to(out, a); });
}
void ProfilingOps::scale_by_ratio(const Tensor& x, const Tensor& num, const Tensor& den,
                                  double power, double c, double alpha, double eps) {
  timed("scale_by_ratio", [&] { inner_.scale_by_ratio(x, num, den, power, c, alpha, eps); });
}
std::vector<int> ProfilingOps::eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                                            const Tensor& a) {
  return timed(std::string("eigh_batched ") + a.shape.str(), [&] { return inner_.eigh_batched(eigenvectors, eigenvalues, a); });
}
std::vector<int> ProfilingOps::cholesky_batched(const Tensor& a) {
  return timed(std::string("cholesky_batched ") + a.shape.str(), [&] { return inner_.cholesky_batched(a); });
}
void ProfilingOps::solve_upper_right_batched(const Tensor& x, const Tensor& r) {
  timed(std::string("solve_upper_right_batched ") + x.shape.str(), [&] { inner_.solve_upper_right_batched(x, r); });
}

}  // namespace mousse
