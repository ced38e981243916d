#pragma once
// Optimizers: one small class each (AdamW, Lion, Muon, SOAP, Mousse), written once against the
// Ops interface, so the CPU reference and the CUDA backend run the same code path.
// An Optimizer serves one parameter group ("matrix", "embedding" or "lm_head"); the trainer
// computes each group's learning rate (peak lr × schedule × multipliers) and calls step().
// State tensors live in the arena (category "optimizer") under unique names, so checkpoints
// save and restore them generically; host-side state goes through save_extra/load_extra.
// A state tensor is named "<optimizer>.<state>.<parameter>" (e.g. "adamw.m.wte",
// "mousse.QL.blocks.0.attn.q"; <state> has no dot): the name is the same on every rank, and
// checkpoints find a tensor's parameter by it when they redistribute the state over another
// number of ranks (train/reshard.h). For a ZeRO-1 slice of a parameter the tensor holds that
// slice's elements (flat), for anything else the whole state of its parameter.
#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/arena.h"
#include "core/json_config.h"
#include "model/params.h"

namespace mousse {

struct OptimStep {
  int64_t step = 1;         // optimizer steps taken including this one (1-based)
  double lr = 0.0;          // this group's learning rate for this step
  double grad_scale = 1.0;  // multiplies the raw gradient first (gradient clipping)
  bool diagnostics = false; // compute the diagnostics for this step (update RMS, ...)
  // Write each parameter's working copy (.compute, bf16 under mixed precision) in the update
  // itself, rounded with this seed (ComputeCopy); set only when fuses_compute_copy().
  bool write_compute = false;
  uint64_t compute_seed = 0;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string type() const = 0;      // "adamw", "lion", "muon", "soap", "mousse"
  virtual std::string describe() const = 0;  // one line: type and every hyperparameter
  // Plans the state tensors for `params` (the ones this rank updates).
  virtual void reserve_state(Arena& arena, const std::vector<Param*>& params) = 0;
  // One update of every parameter in `params` from its .grad (master weights in .weight).
  virtual void step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) = 0;
  // Whether step() can write the weights' working copy in its update pass (OptimStep::
  // write_compute): the elementwise optimizers can; the matrix ones leave it to the caller.
  virtual bool fuses_compute_copy() const { return false; }
  // Diagnostics of the last step run with s.diagnostics (merged into the JSONL log).
  virtual json diagnostics() const { return json::object(); }
  // Host-side state (counters, ...) for checkpoints; tensors go through the arena. A checkpoint
  // calls it BEFORE reading the state tensors: it also finishes work still writing them (Mousse's
  // overlapped refresh).
  virtual json save_extra() const { return json::object(); }
  virtual void load_extra(const json&) {}
  // The host-side state for `rank` of a run resumed from a checkpoint whose ranks saved `saved`
  // (save_extra() of each, in rank order; possibly another number of ranks, another ownership
  // of the matrices). Its result goes to load_extra(). The default, rank 0's, suits state every
  // rank keeps alike (step counters); an optimizer with per-matrix host state or per-rank counts
  // merges them (Mousse, SOAP).
  virtual json merge_extra(const std::vector<json>& saved, int rank) const {
    (void)rank;
    return saved.empty() ? json::object() : saved[0];
  }
};

// Builds the optimizer named by node["type"] from its config object (its keys are validated;
// "lr" and the group-level keys are read by the caller, see train/param_groups.h).
std::unique_ptr<Optimizer> make_optimizer(const ConfigNode& node, const std::string& group);

// Reads the optional "betas": [beta1, beta2] key (defaults: the values passed in), each in [0, 1).
void read_betas(const ConfigNode& node, double& beta1, double& beta2);

// The ComputeCopy an elementwise update of p writes for step s: p's working copy when s asks for
// it and p has a separate one, else none.
ComputeCopy compute_copy_for(const Param& p, const OptimStep& s);

// Shared helper: RMS of a tensor (sqrt(sum x² / n)), as a host double.
double tensor_rms(Ops& ops, const Tensor& t);

}  // namespace mousse
