// Fused softmax cross-entropy over logits [N, Vp]; only the first V (real vocabulary) columns
// enter the softmax, the padding columns get a zero gradient.
//   loss_n = logsumexp(logits[n, :V]) − logits[n, target_n]      (max-subtracted, sums in double)
//   grad   = grad_scale · (softmax(logits[n, :V]) − onehot(target_n)), written over the logits
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"

namespace mousse {

using namespace cpu;

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
    T* lg_all = logits.ptr<T>();
    T* loss = losses.ptr<T>();
#pragma omp parallel for schedule(static) if (N * Vp >= kParallelMin)
    for (int64_t n = 0; n < N; n++) {
      T* lg = lg_all + n * Vp;
      const double m = double(*std::max_element(lg, lg + V));
      double sum = 0.0;
      for (int64_t j = 0; j < V; j++) sum += std::exp(double(lg[j]) - m);
      const double lse = m + std::log(sum);
      loss[n] = T(lse - double(lg[tgt[n]]));
      if (compute_grad) {
        for (int64_t j = 0; j < V; j++) {
          const double p = std::exp(double(lg[j]) - lse);
          lg[j] = T(double(grad_scale) * (p - (j == tgt[n] ? 1.0 : 0.0)));
        }
        for (int64_t j = V; j < Vp; j++) lg[j] = T(0);
      }
    }
  });
}

}  // namespace mousse
