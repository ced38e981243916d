// Fused softmax cross-entropy over logits [N, Vp]; only the first V (real vocabulary) columns
// enter the softmax, the padding columns get a zero gradient.
//   loss_n = logsumexp(logits[n, :V]) − logits[n, target_n]      (max-subtracted, sums in double)
//   grad   = grad_scale · (softmax(logits[n, :V]) − onehot(target_n)), written over the logits
//
// Three passes over each row, which stays in the core's cache after the first: the max; the
// exponentials e_j = exp(x_j − max), summed in double and stored over the logits; then
// e_j · (grad_scale / Σe). f32 rows take cpu_vec.h's vectorised passes (each e_j within 2 ulp),
// so they agree with the f64 rows (libm's exp) to f32 round-off.
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_vec.h"

namespace mousse {

using namespace cpu;

namespace {

// The three passes over one row, for f32 (vectorised, cpu_vec.h) and f64 (libm's exp).
float row_max(const float* x, int64_t n) { return max_f32(x, n); }
double row_max(const double* x, int64_t n) { return *std::max_element(x, x + n); }

double exp_sum(const float* x, int64_t n, float m) { return exp_sum_f32(x, n, m); }
double exp_sum(const double* x, int64_t n, double m) {
  double sum = 0.0;
  for (int64_t j = 0; j < n; j++) sum += std::exp(x[j] - m);
  return sum;
}

double exp_sum_inplace(float* x, int64_t n, float m) { return exp_sum_inplace_f32(x, n, m); }
double exp_sum_inplace(double* x, int64_t n, double m) {
  double sum = 0.0;
  for (int64_t j = 0; j < n; j++) sum += (x[j] = std::exp(x[j] - m));
  return sum;
}

void scale(float* x, int64_t n, double c) { scale_f32(x, n, float(c)); }
void scale(double* x, int64_t n, double c) {
  for (int64_t j = 0; j < n; j++) x[j] *= c;
}

// One row of logits lg[0, Vp): returns the loss; with compute_grad, lg becomes the gradient.
// The probabilities are e_j / Σe with e_j = exp(x_j − max), not exp(x_j − lse): lse = max +
// log Σe rounds log Σe away when the logits are huge (|x| ~ 1e16 in f64, ~1e7 in f32).
template <class T>
double classifier_row(T* lg, int64_t V, int64_t Vp, int32_t tgt, double grad_scale,
                      bool compute_grad) {
  const T m = row_max(lg, V);
  const double x_tgt = double(lg[tgt]);
  if (!compute_grad) return double(m) + std::log(exp_sum(lg, V, m)) - x_tgt;
  const double sum = exp_sum_inplace(lg, V, m);  // lg[j] = e_j
  const double c = grad_scale / sum;             // p_j = e_j / sum
  const T e_tgt = lg[tgt];
  scale(lg, V, c);
  lg[tgt] = T(double(e_tgt) * c - grad_scale);
  std::fill(lg + V, lg + Vp, T(0));
  return double(m) + std::log(sum) - x_tgt;
}

}  // namespace

void CpuOps::classifier_impl(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                             int64_t vocab_size, double grad_scale, bool compute_grad) {
  const char* op = "classifier";
  check_float(op, "logits", logits);
  check_dtype(op, "losses", losses, "logits", logits);
  check_i32(op, "targets", targets);
  const int64_t N = logits.rows(), Vp = logits.cols(), V = vocab_size;
  if (logits.numel() == 0) fail(op, ": empty logits ", logits.shape.str());
  const int32_t* tgt = targets.ptr<int32_t>();
  for (int64_t n = 0; n < N; n++)
    if (tgt[n] < 0 || tgt[n] >= V)
      fail(op, ": target ", tgt[n], " at row ", n, " is outside the vocabulary [0, ", V, ")");
  dispatch_float(op, logits.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* lg = logits.ptr<T>();
    T* loss = losses.ptr<T>();
    // Rows are independent: a thread that gets the cores late takes fewer of them.
#pragma omp parallel for schedule(dynamic, 4) if (N * Vp >= kParallelMin)
    for (int64_t n = 0; n < N; n++)
      loss[n] = T(classifier_row(lg + n * Vp, V, Vp, tgt[n], grad_scale, compute_grad));
  });
}

}  // namespace mousse
