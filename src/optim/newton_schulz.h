#pragma once
// Orthogonalisation of a matrix (or a batch of equally shaped matrices): the map
// X = U Σ Vᵀ  ↦  U f(Σ) Vᵀ, with f(σ) ≈ 1 ("polar factor"), used by Muon and Mousse.
//
//   "ns5"            Newton–Schulz, Muon's quintic: transpose so rows ≤ cols,
//                    X ← X / (‖X‖_F + 1e-7), then `steps` × { A = XXᵀ; B = bA + cA²; X ← aX + BX }
//                    with (a, b, c) = (3.4445, −4.7750, 2.0315). Singular values land in a band
//                    around 1 (≈ [0.68, 1.13]), not exactly on 1.
//   "polar_express"  the same iteration with the per-step Polar Express coefficients of
//                    Amsel et al. (2025) (the 5-step, safety-factor 2e-2 set used by
//                    modded-nanogpt) and X ← X / (1.02·‖X‖_F + 1e-6); steps beyond 5 repeat
//                    the last set.
//   "exact"          the exact polar factor (XXᵀ)^(−1/2) X through ops.eigh of the (smaller)
//                    Gram matrix; singular values below a relative round-off threshold are
//                    treated as zero (a pseudo-polar factor). For tests and analysis.
//
// The workspace comes from the arena (category "optimizer_scratch"), sized up front for the
// largest batch × shape planned; run() allocates nothing on the device.
//
// Working precision ("ns_dtype"): "auto" (default) runs NS5 / Polar Express in bf16 on a CUDA
// arena (tensor-core GEMMs) and in the parameter dtype elsewhere;
// "param" always uses the parameter dtype (the f32 GPU-vs-CPU tests); "bf16" forces bf16 (CUDA
// only: the CPU backend has no bf16). "exact" always uses the parameter dtype.
// No host synchronisation: the Frobenius pre-normalisation is computed on the device
// (sum_squares_batched) and applied by scale_by_ratio. A tall matrix (rows > cols) iterates on
// its Gram side (A = XᵀX, X ← aX + XB), which equals transposing, NS, transposing back.
#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/arena.h"
#include "core/json_config.h"

namespace mousse {

enum class OrthoKind { ns5, polar_express, exact };
enum class OrthoDtype { automatic, param, bf16 };
// Its config names (ns_dtype, Mousse's whiten_dtype).
inline const Named<OrthoDtype> kOrthoDtypes[] = {
    {"auto", OrthoDtype::automatic}, {"param", OrthoDtype::param}, {"bf16", OrthoDtype::bf16}};

struct OrthoOptions {
  OrthoKind kind = OrthoKind::ns5;
  int steps = 5;
  OrthoDtype dtype = OrthoDtype::automatic;
  std::string describe() const;  // "ns5 (5 steps)", "ns5 (5 steps, bf16)"
};
// Reads "orthogonalizer" ("ns5" | "polar_express" | "exact"), "ns_steps" (>= 1) and "ns_dtype"
// ("auto" | "param" | "bf16").
OrthoOptions parse_ortho_options(const ConfigNode& node);

// The NS5 coefficients and the Polar Express schedule (exposed for tests).
struct QuinticCoeffs {
  double a, b, c;
};
QuinticCoeffs ortho_coefficients(OrthoKind kind, int step);
// The Frobenius pre-normalisation: X ← X / (scale·‖X‖_F + eps).
void ortho_normalisation(OrthoKind kind, double* scale, double* eps);

class Orthogonalizer {
 public:
  explicit Orthogonalizer(OrthoOptions opt = {}) : opt_(opt) {}
  const OrthoOptions& options() const { return opt_; }

  // Declares a shape the workspace must hold (call once per distinct use, before reserve()).
  void plan(int64_t batch, int64_t rows, int64_t cols);
  // Reserves the workspace in `arena` (category "optimizer_scratch", names prefix + ".ns.*");
  // dt is the parameter dtype (the working dtype follows options().dtype and the arena's device).
  void reserve(Arena& arena, const std::string& prefix, DType dt);
  DType work_dtype() const { return work_dt_; }

  // out (=) orthogonalise(in). in/out are [rows, cols] or [batch, rows, cols] (each matrix
  // independently); out may alias in.
  void run(Ops& ops, const Tensor& out, const Tensor& in);

 private:
  OrthoOptions opt_;
  void run_exact(Ops& ops, const Tensor& out, const Tensor& in);
  int64_t need_x_ = 0, need_a_ = 0, need_k_ = 0, need_batch_ = 0;
  DType work_dt_ = DType::f32;
  Tensor x_, xn_, a_, b_, evals_, inv_sqrt_;  // flat workspaces
  Tensor ssq_;                                // [batch] squared norms (device scalars)
  std::vector<double> host_;                  // host copy of eigenvalues (exact mode)
};

}  // namespace mousse
