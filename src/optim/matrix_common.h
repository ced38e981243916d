#pragma once
// Pieces shared by the matrix optimizers (Muon, Mousse, SOAP): one concept, one place.
//  - the per-matrix update scale scale(m, n) (Muon and Mousse),
//  - heavy-ball momentum M ← βM + G with optional Nesterov (Muon and Mousse),
//  - the decoupled weight decay + update W ← W(1 − lr·wd) − lr·scale·U,
//  - scratch views carved from flat "optimizer_scratch" buffers,
//  - a small accumulator for the update-RMS diagnostic.
#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/json_config.h"

namespace mousse {

// The per-matrix learning-rate scale of an (out × in) = (m × n) matrix update.
enum class UpdateScale {
  sqrt_out_in,  // sqrt(out / in)                 (Dion's default)
  keller,       // max(1, out / in)^0.5           (Keller Jordan's Muon)
  moonlight,    // 0.2 · sqrt(max(out, in))       (Moonlight: matches AdamW's update RMS)
};
UpdateScale parse_update_scale(const ConfigNode& node, const std::string& key,
                               const std::string& def);
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

// A [s] view at the start of a flat scratch buffer (which was sized for the largest use).
Tensor scratch_view(const Tensor& flat, Shape s);

// Small host <-> device vector transfers for f32/f64/i32 tensors, as doubles (eigenvalues read
// back, permutations and scalings written). Synchronises.
std::vector<double> read_vector(Ops& ops, const Tensor& t);
void write_vector(Ops& ops, const Tensor& t, const std::vector<double>& v);

// Frobenius norm as a host double.
double frobenius(Ops& ops, const Tensor& t);

// Accumulates sum of squares and element counts to report one RMS per group.
struct RmsAccumulator {
  double sum_sq = 0.0;
  double count = 0.0;
  void add(double ssq, int64_t n) { sum_sq += ssq; count += double(n); }
  double rms() const;
};

}  // namespace mousse
