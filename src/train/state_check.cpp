#include "train/state_check.h"

#include <cmath>

namespace mousse {

namespace {
bool finite(Ops& ops, const Tensor& t) {
  if (t.dtype != DType::f32 && t.dtype != DType::f64 && t.dtype != DType::bf16) return true;
  return t.numel() == 0 || std::isfinite(ops.sum_squares(t));
}
}  // namespace

std::string first_non_finite(Ops& ops, const ParamTable& params, const Arena& arena, bool weights) {
  // The weights are one flat buffer: one reduction, and a search by tensor only when it fails.
  if (weights && !finite(ops, params.flat_weights())) {
    for (const Param& p : params.params())
      if (!finite(ops, p.weight)) return "weight tensor " + p.name;
    return "weights";
  }
  for (const Arena::Entry& e : arena.entries())
    if (e.category == "optimizer" && !finite(ops, *e.target)) return "optimizer state tensor " + e.name;
  return "";
}

}  // namespace mousse
