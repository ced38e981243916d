#include "optim/muon.h"

#include <algorithm>
#include <cstdio>

namespace mousse {

Muon::Muon(const ConfigNode& node) {
  momentum = node.number("momentum", momentum, NumRange::right_open(0, 1));
  nesterov = node.boolean("nesterov", nesterov);
  weight_decay = node.number("weight_decay", weight_decay, NumRange::at_least(0));
  scale = parse_update_scale(node);
  ortho_ = Orthogonalizer(parse_ortho_options(node));
}

std::string Muon::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "muon momentum=%g nesterov=%s orthogonalizer=%s update_scale=%s weight_decay=%g",
                momentum, nesterov ? "true" : "false", ortho_.options().describe().c_str(),
                update_scale_name(scale), weight_decay);
  return buf;
}

void Muon::reserve_state(Arena& arena, const std::vector<Param*>& params) {
  m_.resize(params.size());
  int64_t max_stack = 0;
  DType dt = DType::f32;
  for (size_t i = 0; i < params.size(); i++) {
    const Param& p = *params[i];
    MOUSSE_CHECK(p.weight.shape.ndim == 2, "muon: ", p.name, " is not a matrix");
    arena.reserve(m_[i], "optimizer", "muon.m." + p.name, p.weight.dtype, p.weight.shape);
    dt = p.weight.dtype;
  }
  groups_ = group_by_shape(params);
  for (const ShapeGroup& g : groups_) {
    const int64_t b = int64_t(g.index.size());
    ortho_.plan(b, g.rows, g.cols);
    max_stack = std::max(max_stack, b * g.rows * g.cols);
  }
  if (max_stack == 0) return;
  arena.reserve(stack_, "optimizer_scratch", "muon.stack", dt, Shape{max_stack});
  ortho_.reserve(arena, "muon", dt);
}

void Muon::step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) {
  MOUSSE_CHECK(params.size() == m_.size(), "Muon: params changed since reserve_state");
  RmsAccumulator rms;
  for (const ShapeGroup& g : groups_) {
    const int64_t b = int64_t(g.index.size()), mn = g.rows * g.cols;
    const Shape sh{g.rows, g.cols};
    Tensor stack = stack_.slice(0, Shape{b, g.rows, g.cols});
    for (int64_t j = 0; j < b; j++) {  // M ← βM + G; M_eff into the stack
      Param& p = *params[g.index[size_t(j)]];
      const Tensor slot = stack_.slice(j * mn, sh);
      Tensor meff = momentum_update(ops, m_[g.index[size_t(j)]], p.grad, momentum, nesterov,
                                    s.grad_scale, slot);
      if (meff.data != slot.data) ops.copy(slot, meff);
    }
    ortho_.run(ops, stack, stack);  // one batched Newton–Schulz for the shape
    const double sc = update_scale(scale, g.rows, g.cols);
    for (int64_t j = 0; j < b; j++) {
      Param& p = *params[g.index[size_t(j)]];
      const Tensor u = stack_.slice(j * mn, sh);
      if (s.diagnostics) rms.add(sc * sc * ops.sum_squares(u), u.numel());  // logging steps only
      apply_matrix_update(ops, p.weight, u, s.lr, weight_decay, sc);
    }
  }
  if (s.diagnostics) diag_ = rms.to_json();
}

}  // namespace mousse
