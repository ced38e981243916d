// Fused softmax cross-entropy over logits [N, Vp]; only the first V (real vocabulary) columns
// enter the softmax, the padding columns get a zero gradient.
//   loss_n = logsumexp(logits[n, :V]) − logits[n, target_n]      (max-subtracted, sums in double)
//   grad   = grad_scale · (softmax(logits[n, :V]) − onehot(target_n)), written over the logits
//
// f32 rows take three vectorised passes over the row (cpu_vec.h), which stays in the core's cache
// after the first: the max; the exponentials e_j = exp(x_j − max) in f32, summed in double and
// stored over the logits; then e_j · (grad_scale / Σ e). Results agree with the f64 formulas to
// f32 round-off. f64 rows keep the plain formulas with libm's double exp.
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_vec.h"

namespace mousse {

using namespace cpu;

namespace {

// One row of f32 logits lg[0, Vp): returns the loss; with compute_grad, lg becomes the gradient.
double classifier_row(float* lg, int64_t V, int64_t Vp, int32_t tgt, double grad_scale,
                      bool compute_grad) {
  const float m = max_f32(lg, V);
  const double x_tgt = double(lg[tgt]);
  if (!compute_grad) return double(m) + std::log(exp_sum_f32(lg, V, m)) - x_tgt;
  const double sum = exp_sum_inplace_f32(lg, V, m);  // lg[j] = e_j
  const double c = grad_scale / sum;                  // p_j = e_j / sum
  const float e_tgt = lg[tgt];
  scale_f32(lg, V, float(c));
  lg[tgt] = float(double(e_tgt) * c - grad_scale);
  std::fill(lg + V, lg + Vp, 0.f);
  return double(m) + std::log(sum) - x_tgt;
}

template <class T>
double classifier_row(T* lg, int64_t V, int64_t Vp, int32_t tgt, double grad_scale,
                      bool compute_grad) {
  const double m = double(*std::max_element(lg, lg + V));
  double sum = 0.0;
  for (int64_t j = 0; j < V; j++) sum += std::exp(double(lg[j]) - m);
  const double lse = m + std::log(sum);
  const double loss = lse - double(lg[tgt]);
  if (compute_grad) {
    for (int64_t j = 0; j < V; j++) {
      const double p = std::exp(double(lg[j]) - lse);
      lg[j] = T(grad_scale * (p - (j == tgt ? 1.0 : 0.0)));
    }
    std::fill(lg + V, lg + Vp, T(0));
  }
  return loss;
}

}  // namespace

void CpuOps::classifier(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                        int64_t vocab_size, double grad_scale, bool compute_grad) {
  const char* op = "classifier";
  check_float(op, "logits", logits);
  check_dtype(op, "losses", losses, "logits", logits);
  check_i32(op, "targets", targets);
  const int64_t N = logits.rows(), Vp = logits.cols(), V = vocab_size;
  if (logits.numel() == 0) fail(op, ": empty logits ", logits.shape.str());
  if (V <= 0 || V > Vp)
    fail(op, ": vocab_size ", V, " must be in [1, ", Vp, "] (the logits' padded width)");
  check_numel(op, "losses", losses, N, "one per row of logits");
  check_numel(op, "targets", targets, N, "one per row of logits");
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
