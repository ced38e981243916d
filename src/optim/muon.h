#pragma once
#include "optim/matrix_common.h"
#include "optim/newton_schulz.h"
#include "optim/optimizer.h"

namespace mousse {

// Muon (Jordan et al. 2024), per matrix W (out × in) with momentum M:
//   M ← βM + G;  M_eff = Nesterov ? G + βM : M
//   U = orthogonalise(M_eff)          (NS5 by default; Polar Express or exact polar optional)
//   W ← W(1 − lr·wd) − lr·scale(out, in)·U
// Config keys: momentum (0.95), nesterov (true, as Dion's script), orthogonalizer ("ns5"),
// ns_steps (5), ns_dtype ("auto"), update_scale ("sqrt_out_in"), weight_decay (0.01).
// Matrices of the same shape are orthogonalised together: their M_eff are stacked into one
// [batch, m, n] buffer and Newton–Schulz runs once per shape with batched GEMMs.
class Muon : public Optimizer {
 public:
  explicit Muon(const ConfigNode& node);
  std::string type() const override { return "muon"; }
  std::string describe() const override;
  void reserve_state(Arena& arena, const std::vector<Param*>& params) override;
  void step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) override;
  json diagnostics() const override { return diag_; }

  double momentum = 0.95, weight_decay = 0.01;
  bool nesterov = true;
  UpdateScale scale = UpdateScale::sqrt_out_in;

 private:
  Orthogonalizer ortho_;
  std::vector<Tensor> m_;    // momentum per matrix
  std::vector<ShapeGroup> groups_;
  Tensor stack_;             // scratch [batch · m · n] for the largest group
  json diag_ = json::object();
};

}  // namespace mousse
