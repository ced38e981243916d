#pragma once
// Is the training state finite? Checked before every checkpoint, so that no checkpoint holds a
// NaN or Inf: a diverged run's newest checkpoint is then one to resume from (with a lower LR).
// One reduction per tensor (ops.sum_squares, accumulated in double: finite iff every element is,
// short of magnitudes beyond 1e154), on the device: a read of the state, cheap next to writing it.
#include <string>

#include "backend/ops.h"
#include "core/arena.h"
#include "model/params.h"

namespace mousse {

// The name of the first parameter (when `weights`) or optimizer state tensor (arena category
// "optimizer": this rank's part under data parallelism) holding a non-finite value, as
// "weight tensor blocks.0.attn.q" or "optimizer state tensor adamw.v.wte"; "" when all are finite.
std::string first_non_finite(Ops& ops, const ParamTable& params, const Arena& arena, bool weights);

}  // namespace mousse
