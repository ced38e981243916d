#pragma once
#include "optim/optimizer.h"

namespace mousse {

// Lion (Chen et al. 2023): u = sign(β1 m + (1−β1) g); m ← β2 m + (1−β2) g; W ← W(1−lr·wd) − lr·u.
// The paper's scalar optimizer for wte and lm_head (β = (0.95, 0.98), no weight decay).
class Lion : public Optimizer {
 public:
  explicit Lion(const ConfigNode& node);
  std::string type() const override { return "lion"; }
  std::string describe() const override;
  void reserve_state(Arena& arena, const std::vector<Param*>& params) override;
  void step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) override;
  bool fuses_compute_copy() const override { return true; }

  double beta1 = 0.95, beta2 = 0.98, weight_decay = 0.0;

 private:
  std::vector<Tensor> momentum_;
};

}  // namespace mousse
