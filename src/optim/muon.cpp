#include "optim/muon.h"

#include <cstdio>

namespace mousse {

Muon::Muon(const ConfigNode& node) {
  momentum = node.number("momentum", momentum);
  nesterov = node.boolean("nesterov", nesterov);
  weight_decay = node.number("weight_decay", weight_decay);
  scale = parse_update_scale(node, "update_scale", "sqrt_out_in");
  ortho_ = Orthogonalizer(parse_ortho_options(node));
  if (!(momentum >= 0 && momentum < 1)) node.error("momentum", "must be in [0, 1)");
  if (weight_decay < 0) node.error("weight_decay", "must be >= 0");
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
  int64_t max_numel = 0;
  DType dt = DType::f32;
  for (size_t i = 0; i < params.size(); i++) {
    const Param& p = *params[i];
    MOUSSE_CHECK(p.weight.shape.ndim == 2, "muon: ", p.name, " is not a matrix");
    arena.reserve(m_[i], "optimizer", "muon.m." + p.name, p.weight.dtype, p.weight.shape);
    max_numel = std::max(max_numel, p.weight.numel());
    ortho_.plan(1, p.rows, p.cols);
    dt = p.weight.dtype;
  }
  if (max_numel == 0) return;
  arena.reserve(s1_, "optimizer_scratch", "muon.scratch1", dt, Shape{max_numel});
  arena.reserve(s2_, "optimizer_scratch", "muon.scratch2", dt, Shape{max_numel});
  ortho_.reserve(arena, "muon", dt);
}

void Muon::step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) {
  MOUSSE_CHECK(params.size() == m_.size(), "Muon: params changed since reserve_state");
  RmsAccumulator rms;
  for (size_t i = 0; i < params.size(); i++) {
    Param& p = *params[i];
    const Shape sh = p.weight.shape;
    Tensor meff = momentum_update(ops, m_[i], p.grad, momentum, nesterov, s.grad_scale,
                                  scratch_view(s1_, sh));
    Tensor u = scratch_view(s2_, sh);
    ortho_.run(ops, u, meff);
    const double sc = update_scale(scale, p.rows, p.cols);
    if (s.diagnostics) rms.add(sc * sc * ops.sum_squares(u), u.numel());
    apply_matrix_update(ops, p.weight, u, s.lr, weight_decay, sc);
  }
  if (s.diagnostics) diag_ = json{{"update_rms", rms.rms()}};
}

}  // namespace mousse
