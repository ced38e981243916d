#pragma once
// Parameter groups: routing of parameters to optimizers (docs/optimizers.md). Matrices (attention
// q, k, v, o and MLP fc, proj) take the "matrix" optimizer; wte takes "embedding" and lm_head
// takes "lm_head" (which defaults to the embedding group's settings). Each group has its own
// peak LR and lr_scale; the schedule factor multiplies both.
//
//   "optimizer": {
//     "grad_clip": 1.0,                      // clip the raw global gradient norm (0 = off)
//     "matrix":    {"type": "mousse", "lr": 0.02, ...optimizer keys},
//     "embedding": {"type": "lion", "lr": 3e-4, "betas": [0.95, 0.98], "weight_decay": 0},
//     "lm_head":   {...}                     // optional; default: a copy of "embedding"
//     "lm_head_lr_scale": 1.0                // optional extra LR factor for lm_head
//   }
#include <memory>
#include <string>
#include <vector>

#include "model/params.h"
#include "optim/optimizer.h"

namespace mousse {

struct ParamGroup {
  std::string name;             // "matrix", "embedding", "lm_head"
  std::vector<Param*> params;   // the parameters this rank updates
  double lr = 0;                // peak learning rate
  double lr_scale = 1;          // constant factor on this group's LR
  std::unique_ptr<Optimizer> optimizer;
  double lr_at(double schedule_factor) const { return lr * lr_scale * schedule_factor; }
};

struct OptimizerSetup {
  double grad_clip = 1.0;
  std::vector<ParamGroup> groups;
};

OptimizerSetup make_optimizer_setup(const json& optimizer, const std::string& file,
                                    ParamTable& table);

// One optimizer step of every group: `step` (0-based) is the step being taken, learning rates at
// the schedule factor, gradients scaled by grad_scale (clipping). Where fuse_compute_copy allows
// it and every group's optimizer can, the weights' working copy is written by the updates
// themselves (seeded with compute_seed; one pass over the weights fewer). Returns whether it
// was; if not, the caller refreshes the copy (GPT::sync_compute_weights, the same seed). Data-
// parallel ranks pass false: they update only their shards and copy after the all-gather.
bool step_optimizers(Ops& ops, OptimizerSetup& setup, int64_t step, double schedule_factor,
                     double grad_scale, bool diagnostics, bool fuse_compute_copy,
                     uint64_t compute_seed);

}  // namespace mousse
