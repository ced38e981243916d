#pragma once
#include "optim/matrix_common.h"
#include "optim/optimizer.h"

namespace mousse {

// SOAP (Vyas et al. 2024, reference implementation nikhilvyas/SOAP soap.py, for 2-D
// parameters): Adam in the eigenbasis of the Shampoo factors L = EMA(G Gᵀ), R = EMA(Gᵀ G).
//  - first step: L, R ← (1−β_pc)·(G Gᵀ, Gᵀ G); Q_L, Q_R ← eigenvectors (descending eigenvalues);
//    no parameter update (the reference skips it so the current gradient is never projected
//    with a basis built from itself);
//  - then, with k counting the Adam steps (1, 2, ...):
//      G' = Q_Lᵀ G Q_R;  m ← β1 m + (1−β1) G';  v ← β2 v + (1−β2) G'²
//      N  = Q_L (m / (sqrt(v) + eps)) Q_Rᵀ  (optionally divided by its RMS: normalize_grads)
//      W ← W − lr·sqrt(1−β2^k)/(1−β1^k)·N;  W ← W(1 − lr·wd)      (the reference's order)
//      L, R ← EMA with G (β_pc);  every T Adam steps: one power iteration + QR per factor, all
//      factors of one size in one batched step
//      (Q ← qr(L Q[:, σ]) with σ sorting diag(Qᵀ L Q) descending, v permuted by σ along
//      that dimension, m rotated from the old basis into the new one; power_qr_step, whose
//      QR is Householder's or Cholesky QR by the key "qr").
//  - a dimension larger than max_precond_dim is not preconditioned (identity basis).
// m lives in the eigenbasis (the current reference); ops on state are double-safe.
class Soap : public Optimizer {
 public:
  explicit Soap(const ConfigNode& node);
  std::string type() const override { return "soap"; }
  std::string describe() const override;
  void reserve_state(Arena& arena, const std::vector<Param*>& params) override;
  void step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) override;
  json diagnostics() const override { return diag_; }
  json save_extra() const override;
  void load_extra(const json& j) override;
  json merge_extra(const std::vector<json>& saved, int rank) const override;

  double beta1 = 0.95, beta2 = 0.95, eps = 1e-8, weight_decay = 0.01, beta_pc = 0.95;
  int64_t update_interval = 10, max_precond_dim = 10000;
  bool normalize_grads = false, correct_bias = true;
  QrMethod qr = QrMethod::automatic;  // how the refresh orthonormalises (matrix_common.h)
  // Precision of the statistics' GEMMs G Gᵀ, Gᵀ G: "auto" (TF32 on CUDA), "param", "tf32",
  // "bf16" (matrix_common.h); the same key and default as Mousse's, so the two compare fairly.
  StatsPrecision stats_dtype = StatsPrecision::automatic;

 private:
  struct Side {
    bool on = false;
    int64_t dim = 0;
    Tensor gg, q;
  };
  struct State {
    Tensor m, v;
    Side out, in;  // L (rows, m×m) and R (cols, n×n)
  };
  struct SideRef {  // one preconditioned side and the state whose v it permutes
    Side* side;
    State* st;
    bool rows;  // the output side (L, rows of v) or the input side (R, columns)
  };
  std::vector<std::pair<int64_t, SideRef>> sized_sides();  // the sides in use, with d
  void init_basis(Ops& ops, Side& sd);
  // Every factor's basis, batched by size (stacks of refresh_stack_capacity factors through
  // one power_qr_step), each matrix's v permuted by the new column order along that side.
  void refresh_all(Ops& ops);
  void rotate(Ops& ops, const Tensor& dst, const Tensor& src, const State& st, bool back);

  std::vector<State> st_;
  Tensor s1_, s2_, sq1_, sq2_, vec_, idx_;  // scratch
  Tensor ssq_;                               // device scalar (normalize_grads)
  Tensor g16_;                               // bf16 copy of G (stats_dtype "bf16")
  StatsPrecision stats_ = StatsPrecision::automatic;  // stats_dtype, resolved by reserve_state
  PowerQrScratch power_;                     // the refresh's (power_qr_step)
  Tensor stack_gg_, stack_q_;                // stacked factors and bases (refresh)
  int64_t cholesky_qr_failures_ = 0;         // refreshes redone with Householder QR
  int64_t calls_ = 0;  // step() calls so far (the first only builds the preconditioner)
  int64_t k_ = 0;      // Adam steps so far (the reference's state["step"])
  int64_t failures_ = 0;
  json diag_ = json::object();
};

}  // namespace mousse
