#include "optim/lion.h"

#include <cstdio>

namespace mousse {

Lion::Lion(const ConfigNode& node) {
  read_betas(node, beta1, beta2);
  weight_decay = node.number("weight_decay", weight_decay, NumRange::at_least(0));
}

std::string Lion::describe() const {
  char buf[128];
  std::snprintf(buf, sizeof buf, "lion betas=(%g, %g) weight_decay=%g", beta1, beta2,
                weight_decay);
  return buf;
}

void Lion::reserve_state(Arena& arena, const std::vector<Param*>& params) {
  momentum_.resize(params.size());
  for (size_t i = 0; i < params.size(); i++)
    arena.reserve(momentum_[i], "optimizer", "lion.m." + params[i]->name,
                  params[i]->weight.dtype, params[i]->weight.shape);
}

void Lion::step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) {
  MOUSSE_CHECK(params.size() == momentum_.size(), "Lion: params changed since reserve_state");
  LionArgs a;
  a.lr = s.lr;
  a.beta1 = beta1;
  a.beta2 = beta2;
  a.weight_decay = weight_decay;
  a.grad_scale = s.grad_scale;
  for (size_t i = 0; i < params.size(); i++)
    ops.lion_update(params[i]->weight, params[i]->grad, momentum_[i], a,
                    compute_copy_for(*params[i], s));
}

}  // namespace mousse
