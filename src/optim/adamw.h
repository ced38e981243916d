#pragma once
#include "optim/optimizer.h"

namespace mousse {

// AdamW (Loshchilov & Hutter) with decoupled weight decay W ← W(1 − lr·wd), bias correction.
class AdamW : public Optimizer {
 public:
  explicit AdamW(const ConfigNode& node);
  std::string type() const override { return "adamw"; }
  std::string describe() const override;
  void reserve_state(Arena& arena, const std::vector<Param*>& params) override;
  void step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) override;
  bool fuses_compute_copy() const override { return true; }

  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.01;

 private:
  struct State { Tensor m, v; };
  std::vector<State> state_;  // parallel to the params given to reserve_state
};

}  // namespace mousse
