#include "optim/adamw.h"

#include <cmath>
#include <cstdio>

namespace mousse {

AdamW::AdamW(const ConfigNode& node) {
  read_betas(node, beta1, beta2);
  eps = node.number("eps", eps, NumRange::above(0));
  weight_decay = node.number("weight_decay", weight_decay, NumRange::at_least(0));
}

std::string AdamW::describe() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "adamw betas=(%g, %g) eps=%g weight_decay=%g", beta1, beta2,
                eps, weight_decay);
  return buf;
}

void AdamW::reserve_state(Arena& arena, const std::vector<Param*>& params) {
  state_.resize(params.size());
  for (size_t i = 0; i < params.size(); i++) {
    const Param& p = *params[i];
    arena.reserve(state_[i].m, "optimizer", "adamw.m." + p.name, p.weight.dtype, p.weight.shape);
    arena.reserve(state_[i].v, "optimizer", "adamw.v." + p.name, p.weight.dtype, p.weight.shape);
  }
}

void AdamW::step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) {
  MOUSSE_CHECK(params.size() == state_.size(), "AdamW: params changed since reserve_state");
  AdamWArgs a;
  a.lr = s.lr;
  a.beta1 = beta1;
  a.beta2 = beta2;
  a.eps = eps;
  a.weight_decay = weight_decay;
  a.bias_correction1 = 1.0 - std::pow(beta1, double(s.step));
  a.bias_correction2 = 1.0 - std::pow(beta2, double(s.step));
  a.grad_scale = s.grad_scale;
  for (size_t i = 0; i < params.size(); i++)
    ops.adamw_update(params[i]->weight, params[i]->grad, state_[i].m, state_[i].v, a,
                     compute_copy_for(*params[i], s));
}

}  // namespace mousse
