#pragma once
#include "optim/matrix_common.h"
#include "optim/newton_schulz.h"
#include "optim/optimizer.h"
#include "optim/refresh_worker.h"

namespace mousse {

// Mousse (Algorithm 1 of the paper, as docs/optimizers.md pins it down), per matrix W (m × n = out × in):
//   M ← βM + G                                  (Nesterov optional: M_eff = G + βM)
//   L ← β_pc L + (1−β_pc) G Gᵀ ;  R ← β_pc R + (1−β_pc) Gᵀ G
//   every T steps, the first included:
//       L̃ ← dim(L)/(tr L + ε) · L  (trace normalisation, optional);  same for R
//       Q_L, Λ_L ← eigh(L̃ + εI) ;  s_L ← max(Λ_L, ε)^(−α)        (a failed eigh keeps the
//                                                                  previous basis; counted)
//       (refresh "power_qr": after the first refresh, Q_L ← qr((L̃ + εI) Q_L[:, σ]) and
//        Λ_L ← its Rayleigh quotients instead of the eigh; see power_qr_step)
//   Refreshes are batched: the factors of one size go through one eigh_batched or one
//   power_qr_step per stack.
//   M̃ ← diag(s_L) (Q_Lᵀ M_eff Q_R) diag(s_R) ;  M̄ ← NS5(M̃) ;  γ ← ‖M̄‖_F
//   U ← Q_L (diag(s_L) M̄ diag(s_R)) Q_Rᵀ ;  U ← γ U / ‖U‖_F        (grafting, optional; ‖U‖=0 kept)
//   W ← W(1 − lr·wd) − lr·scale(m, n)·U
// Whitening side: "both", "output" (L only, m×m), "input" (R only, n×n), "smaller" (the side
// with the smaller dimension; "output" on square matrices). See docs/optimizers.md.
// Matrices of one shape form a group whose momenta, bases and scalings are planned as
// contiguous stacks (Arena::reserve_stack): the whitening GEMMs, the scalings, the batched
// Newton–Schulz and the grafting norms run once per group on [batch, m, n] tensors; only the
// statistics, the momentum and the weight update (whose gradients and weights live in the
// model's layout) run per matrix. Norms (trace normalisation, γ, ‖U‖) stay on the device.
class Mousse : public Optimizer {
 public:
  enum class Side { both, output, input, smaller };
  explicit Mousse(const ConfigNode& node);
  std::string type() const override { return "mousse"; }
  std::string describe() const override;
  void reserve_state(Arena& arena, const std::vector<Param*>& params) override;
  void step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) override;
  json diagnostics() const override { return diag_; }
  json save_extra() const override;
  void load_extra(const json& j) override;
  json merge_extra(const std::vector<json>& saved, int rank) const override;

  double momentum = 0.95, beta_pc = 0.95, eps = 1e-5, alpha = 0.125, weight_decay = 0.01;
  int64_t update_interval = 10;
  bool nesterov = false, trace_normalize = true, grafting = true;
  bool pc_bias_correction = false;  // divide L, R by (1 − β_pc^t) before eigh (paper §3.2 form)
  Side whiten = Side::both;
  // How a refresh computes the bases: "eigh" (Algorithm 1: an exact eigendecomposition every
  // time) or "power_qr" (the exact eigh at the first refresh and every `eigh_every`-th one
  // (0: never again); the others one warm-started subspace-iteration step, paper §6.2).
  enum class Refresh { eigh, power_qr };
  Refresh refresh_method = Refresh::eigh;
  int64_t eigh_every = 0;
  QrMethod qr = QrMethod::automatic;  // how power_qr orthonormalises (matrix_common.h)
  // Precision of the statistics' GEMMs G Gᵀ, Gᵀ G: "auto" (TF32 on CUDA), "param", "tf32",
  // "bf16" (matrix_common.h).
  StatsPrecision stats_dtype = StatsPrecision::automatic;
  UpdateScale scale = UpdateScale::sqrt_out_in;
  // Precision of the bases Q_L, Q_R and of the whitening / un-whitening GEMMs: "auto" (bf16 on
  // CUDA: bf16 tensor-core GEMMs with f32 accumulation, bases stored in bf16; the parameter
  // dtype on the CPU), "param", "bf16".
  OrthoDtype whiten_dtype = OrthoDtype::automatic;
  // Overlapped refresh (refresh "eigh" only): N > 0 computes every refresh after the first on a
  // worker thread with a backend of its own (on CUDA: its own stream), from the statistics of
  // its step t, while steps t .. t+N−1 keep whitening with the previous bases; the new bases
  // take effect at step t + N, before its whitening (1 <= N <= update_interval). 0: synchronous,
  // as Algorithm 1. See docs/optimizers.md for which statistics a basis then reflects.
  int64_t refresh_overlap = 0;

  int64_t eigh_failures() const { return failures_; }

 private:
  struct Factor {  // one side's preconditioner
    bool on = false;
    int64_t dim = 0;
    Tensor stat, basis, scaling;  // L (dim×dim), Q_L (dim×dim), s_L (dim)
    double cond = 0.0;            // of L̃ + εI at the last successful eigh (diagnostics)
  };
  struct State {
    std::string name;
    Tensor m;
    Factor out, in;  // L (output side, m×m) and R (input side, n×n)
  };
  // a = the damped factor that eigh decomposes: f.stat, trace-normalised (or bias-corrected),
  // plus ε on the diagonal; all on the device.
  void damped_factor(Ops& ops, const Tensor& a, const Factor& f);
  void refresh(Ops& ops, Factor& f);  // one factor (f32 then f64 retry)
  // Every factor, batched by size (for_each_refresh_stack over sized_factors()).
  void refresh_all(Ops& ops);        // eigh_batched
  void refresh_power_all(Ops& ops);  // one subspace-iteration step (power_qr_step)
  std::vector<std::pair<int64_t, Factor*>> sized_factors();  // the factors in use, with d
  void set_basis(Ops& ops, Factor& f, const Tensor& q, const Tensor& lam,
                 const std::vector<double>& host_lam);  // basis, scalings, condition number
  // Host-timed seconds: the refresh work of `f` (which synchronises first and last).
  template <class F> void timed(Ops& ops, F&& f);
  void basis_gemm(Ops& ops, const Tensor& out, const Tensor& q, bool trans_q, const Tensor& x,
                  bool q_left);
  // The [batch, ...] stack of one state tensor (get(State)) of a group's matrices.
  template <class Get> Tensor group_stack(const ShapeGroup& grp, Get&& get) const;

  Orthogonalizer ortho_;
  std::vector<State> st_;
  std::vector<ShapeGroup> groups_;
  Tensor s1_, s2_, sq1_, sq2_, lam_;  // scratch
  Tensor stack_;                      // [batch · m · n] whitened momenta of the largest group
  Tensor gamma_ssq_, u_ssq_, tr_;     // device scalars: ‖M̄_j‖², ‖U_j‖², tr(F)
  Tensor eig_a_, eig_v_, eig_w_;      // stacked factors / eigenvectors / eigenvalues (refresh)
  PowerQrScratch power_;              // refresh "power_qr" only
  int64_t cholesky_qr_failures_ = 0;  // power_qr steps whose Cholesky QR fell back
  // Overlapped refresh: the damped factors of step t (refresh_input, not overlaid with anything)
  // and the eigenvectors and eigenvalues the worker (refresh_worker.h) writes, laid out stack by
  // stack as refresh_all's. The results are state, one tensor per factor named after its matrix
  // ("mousse.pending_QL.<name>", "mousse.pending_lambdaL.<name>"): a checkpoint taken while a
  // refresh is pending resumes it exactly, on any number of ranks.
  struct PendingSlot {
    Factor* f;
    std::string matrix;  // the matrix's name
    const char* side;    // "L" or "R"
    int64_t d, mat;      // its size, the offset of its [d, d] slice of the refresh input
    Tensor v, w;         // the worker's eigenvectors [d, d] and eigenvalues [d] (one stack per size)
  };
  struct PendingStack {
    size_t first, count;  // pending_slots_[first, first + count), all of size d
    int64_t d;
  };
  void start_overlapped_refresh(Ops& ops);
  void apply_pending_refresh(Ops& ops);
  // A stack's eigenvectors, eigenvalues and input, as eigh_batched takes them; all stacks.
  RefreshWorker::Stack pending_stack(const PendingStack& st) const;
  std::vector<RefreshWorker::Stack> pending_stack_list() const;
  std::vector<PendingSlot> pending_slots_;  // not resized after reserve_state (arena targets)
  std::vector<PendingStack> pending_stacks_;
  Tensor pend_a_;
  // Made at the first refresh (its status is per slot); declared after the tensors it writes.
  RefreshWorker refresh_worker_;
  int64_t pending_apply_at_ = -1;  // the step (t_) it takes effect; -1: none
  double overlapped_seconds_total_ = 0.0;
  Tensor cur16_;  // bf16 copy of the matrix a bf16 basis multiplies (and of G for bf16 stats)
  StatsPrecision stats_ = StatsPrecision::automatic;  // stats_dtype, resolved by reserve_state
  int64_t t_ = 0;                      // steps taken (Algorithm 1's t before this step)
  int64_t failures_ = 0;
  double refresh_seconds_total_ = 0.0, refresh_seconds_window_ = 0.0;
  json diag_ = json::object();
};

}  // namespace mousse
