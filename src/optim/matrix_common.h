#pragma once
// Pieces shared by the matrix optimizers (Muon, Mousse, SOAP): one concept, one place.
//  - the per-matrix update scale scale(m, n) (Muon and Mousse),
//  - heavy-ball momentum M ← βM + G with optional Nesterov (Muon and Mousse),
//  - the decoupled weight decay + update W ← W(1 − lr·wd) − lr·scale·U,
//  - scratch views carved from flat "optimizer_scratch" buffers,
//  - one warm-started subspace-iteration step that refreshes an eigenbasis (SOAP, Mousse),
//  - a small accumulator for the update-RMS diagnostic.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "backend/ops.h"
#include "core/arena.h"
#include "core/json_config.h"
#include "model/params.h"

namespace mousse {

// The per-matrix learning-rate scale of an (out × in) = (m × n) matrix update.
enum class UpdateScale {
  sqrt_out_in,  // sqrt(out / in)                 (Dion's default)
  keller,       // max(1, out / in)^0.5           (Keller Jordan's Muon)
  moonlight,    // 0.2 · sqrt(max(out, in))       (Moonlight: matches AdamW's update RMS)
};
UpdateScale parse_update_scale(const ConfigNode& node);  // key "update_scale"; "sqrt_out_in"
const char* update_scale_name(UpdateScale s);
double update_scale(UpdateScale s, int64_t out, int64_t in);

// Momentum (Algorithm 1 line 1, Muon): M ← βM + g with g = grad_scale·G.
// Returns the momentum the update is computed from: M itself, or with Nesterov the look-ahead
// g + βM (computed after the update of M, as in Muon's reference) written into `scratch`.
Tensor momentum_update(Ops& ops, const Tensor& m, const Tensor& g, double beta, bool nesterov,
                       double grad_scale, const Tensor& scratch);

// W ← W(1 − lr·wd) − lr·scale·U  (decoupled weight decay; one elementwise pass).
void apply_matrix_update(Ops& ops, const Tensor& w, const Tensor& u, double lr, double wd,
                         double scale);

// The matrices of one shape (rows × cols): the optimizers that batch by shape (Muon, Mousse)
// stack their work per group.
struct ShapeGroup {
  int64_t rows = 0, cols = 0;
  std::vector<size_t> index;  // into the parameter list, in its order
};
// The groups of `params` (all matrices), in the order their shapes first occur.
std::vector<ShapeGroup> group_by_shape(const std::vector<Param*>& params);

// A [s] view at the start of a flat scratch buffer (which was sized for the largest use).
Tensor scratch_view(const Tensor& flat, Shape s);

// Small host <-> device vector transfers for f32/f64/i32 tensors, as doubles (eigenvalues read
// back, permutations and scalings written). Synchronises.
// Resharding a checkpoint (Optimizer::merge_extra): the refresh failure counts saved by every
// rank ("eigh_failures", "cholesky_qr_failures") summed into the new rank 0's `out`, zero on the
// other ranks, since the ranks' diagnostics are summed.
void sum_refresh_failures_to_rank0(const std::vector<json>& saved, int rank, json& out);

std::vector<double> read_vector(Ops& ops, const Tensor& t);
void write_vector(Ops& ops, const Tensor& t, const std::vector<double>& v);
// True when every value is finite (eigenvalues read back: a failed decomposition shows as NaN).
bool all_finite(const std::vector<double>& v);

// How many [d, d] factors of one size (out of `count`) a refresh stacks at a time: as many as
// fit in 16 MiB at `elem_bytes` per element, at least one. Larger stacks barely speed the
// batched eigh or power step up (their work is per matrix) but cost scratch and cuSOLVER
// workspace, which grows with the batch.
int64_t refresh_stack_capacity(int64_t d, int64_t count, size_t elem_bytes);

// The stacks of a batched refresh (Mousse, SOAP): calls f(d, stack) with the factors (each
// given with its dimension d) grouped by size, increasing d, in stacks of at most
// refresh_stack_capacity, in the order given.
template <class T, class F>
void for_each_refresh_stack(const std::vector<std::pair<int64_t, T>>& factors, size_t elem_bytes,
                            F&& f) {
  std::map<int64_t, std::vector<T>> by_dim;
  for (const auto& [d, item] : factors) by_dim[d].push_back(item);
  for (const auto& [d, all] : by_dim) {
    const size_t cap = size_t(refresh_stack_capacity(d, int64_t(all.size()), elem_bytes));
    for (size_t first = 0; first < all.size(); first += cap)
      f(d, std::vector<T>(all.begin() + first, all.begin() + std::min(all.size(), first + cap)));
  }
}

// What the scratch of those stacks must hold: the largest stack (b·d² elements) and its
// vectors (b·d).
struct RefreshStackSize {
  int64_t matrix_elems = 0, vector_elems = 0;
};
template <class T>
RefreshStackSize refresh_stack_size(const std::vector<std::pair<int64_t, T>>& factors,
                                    size_t elem_bytes) {
  RefreshStackSize s;
  for_each_refresh_stack(factors, elem_bytes, [&](int64_t d, const std::vector<T>& stack) {
    s.matrix_elems = std::max(s.matrix_elems, int64_t(stack.size()) * d * d);
    s.vector_elems = std::max(s.vector_elems, int64_t(stack.size()) * d);
  });
  return s;
}

// Precision of the curvature statistics' GEMMs G Gᵀ, Gᵀ G (Mousse and SOAP, key "stats_dtype";
// the EMA itself stays in the parameter dtype):
//   "param": exact in the parameter dtype;
//   "tf32":  f32 operands read at TF32 precision, f32 accumulation (Ops::matmul_tf32; the CPU
//            emulates it). The statistics are a running average of noisy gradients' Gram
//            matrices, used through an ε-damped eigenbasis that Mousse then stores in bf16:
//            TF32's 2^-11 input rounding is far below both. On an H100 it runs the statistics
//            on tensor cores instead of f32 CUDA cores (~0.6 TFLOP per 162m step, both sides);
//   "bf16":  G copied to bf16 first, bf16 tensor-core GEMMs (CUDA only);
//   "auto":  "tf32" on CUDA with f32 parameters, "param" otherwise (the default).
enum class StatsPrecision { automatic, param, tf32, bf16 };
StatsPrecision parse_stats_precision(const ConfigNode& node);
const char* stats_precision_name(StatsPrecision p);
// For describe(): the configured name, with what "auto" resolved to once it has ("auto (tf32)").
std::string stats_precision_describe(StatsPrecision configured, StatsPrecision resolved);
// "auto" resolved for a device and the parameters' dtype; "bf16" off CUDA and "tf32" with
// non-f32 parameters are errors naming `who` and the key.
StatsPrecision resolve_stats_precision(StatsPrecision p, Device device, DType param_dtype,
                                       const char* who);

// One gradient's statistics, the EMA being the GEMM's own accumulation:
//   out_stat ← w · G Gᵀ + β · out_stat,   in_stat ← w · Gᵀ G + β · in_stat
// (an empty tensor skips that side), at precision p (resolved). With "bf16", G is copied once
// into bf16_scratch (at least G's size) for both products.
void update_statistics(Ops& ops, const Tensor& out_stat, const Tensor& in_stat, const Tensor& g,
                       double w, double beta, StatsPrecision p, const Tensor& bf16_scratch);

// How power_qr_step orthonormalises (config key "qr"): "householder" (qr_orthonormal, one
// matrix at a time) or "cholesky" (orthonormalize below: batched, GEMM-shaped). "auto":
// Cholesky QR on CUDA, where Householder QR's panel factorisations ran at 0.4–4 TFLOP/s
// (768² and 3072² on an H100, docs/results/gpu-h100.md); Householder on the CPU, where LAPACK's
// blocked QR is efficient and Cholesky QR's three f64 passes are ~4× its flops. Both give the
// same Q (diag R > 0) to round-off.
enum class QrMethod { automatic, cholesky, householder };
QrMethod parse_qr_method(const ConfigNode& node);
const char* qr_method_name(QrMethod m);

// Scratch of power_qr_step / orthonormalize for stacks of [d, d] matrices: reserve() with the
// largest b·d·d and b·d they will be called with, and the method ("auto" resolved by the
// arena's device; Cholesky QR's f64 buffers are reserved only when it is used).
struct PowerQrScratch {
  bool cholesky = false;
  Tensor p, e;      // [batch·d·d] in the bases' dtype: a·q, then its permuted columns
  Tensor x, gram;   // [batch·d·d] f64: Cholesky QR's working copy and its Gram matrices
  Tensor est;       // [batch·d] in the bases' dtype: Rayleigh quotients
  Tensor inv_norm;  // [batch·d] f64: column scalings
  Tensor idx;       // [batch·d] i32: the column orders σ
  void reserve(Arena& arena, const std::string& category, const std::string& prefix, DType dt,
               int64_t matrix_elems, int64_t vector_elems, QrMethod method);
};

// q_k (=) the orthonormal factor of the QR of e_k (diag(R) > 0, as qr_orthonormal) for every
// slice of e [b, d, d], by shifted Cholesky QR 3 in f64 (Fukaya, Kannan, Nakatsukasa, Yamamoto,
// Yanagisawa 2020): three passes of Gram matrix (one batched GEMM), Cholesky and triangular
// solve, the first with its Gram matrix shifted so that it cannot fail for a finite, full-rank
// e; the second and third restore orthogonality to f64 round-off. Columns are scaled to unit
// norm first (the same Q; the Gram matrix is then better conditioned and ‖x‖₂² ≤ d bounds the
// shift). All of it is GEMM-shaped and batched, where Householder QR (qr_orthonormal) is a
// sequence of panel factorisations per matrix. A slice whose factorisation fails (not finite,
// or numerically rank deficient) is redone with qr_orthonormal. Returns how many were.
// Synchronises three times (one per Cholesky pass).
int orthonormalize(Ops& ops, const Tensor& q, const Tensor& e, const PowerQrScratch& s);

// One step of subspace iteration warm-started from the orthonormal bases q [b, d, d] of the
// symmetric a [b, d, d] (eigenvectors in columns): the columns of q_k are ordered by their
// Rayleigh quotients diag(q_kᵀ a_k q_k), largest first (the permutation σ_k), then q_k ← the
// orthonormal factor of qr(a_k · q_k[:, σ_k]) (orthonormalize or qr_orthonormal, as s says).
// This is SOAP's refresh (Vyas et al.'s reference) and the paper's suggestion (§6.2) for
// Mousse: one GEMM and one QR instead of an eigendecomposition. The ordering keeps the nested
// subspaces span(q₁..q_j) converging to the dominant ones, so the error in column j along
// eigenvector i shrinks by λ_i/λ_j per step. After it s.idx holds every σ_k; they are also
// returned. Synchronises once for the sort (and three more times with Cholesky QR).
struct PowerQrResult {
  std::vector<std::vector<int64_t>> order;  // σ_k
  int householder_fallbacks = 0;  // slices whose Cholesky QR failed, redone with Householder
};
PowerQrResult power_qr_step(Ops& ops, const Tensor& q, const Tensor& a, const PowerQrScratch& s);

// Accumulates sum of squares and element counts to report one RMS per group.
struct RmsAccumulator {
  double sum_sq = 0.0;
  double count = 0.0;
  void add(double ssq, int64_t n) { sum_sq += ssq; count += double(n); }
  double rms() const;
  // {"update_rms", "update_sum_squares", "update_count"}: the sums let data-parallel ranks,
  // each updating its own matrices, be merged into one RMS (merge_rank_diagnostics).
  json to_json() const;
};

}  // namespace mousse
