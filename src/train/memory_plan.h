#pragma once
// The device memory a run would use, planned without the device (`mousse config --memory`):
// "will the 834m Mousse run fit on 8 × 80 GB at micro-batch 16?" answered on a laptop.
#include <string>
#include <vector>

#include "train/run_config.h"

namespace mousse {

struct RankMemory {
  int rank = 0;
  size_t arena_bytes = 0;  // the one allocation: parameters, gradients, optimizer, activations
  size_t optimizer_bytes = 0;  // of which optimizer state (category "optimizer")
  std::string report;      // Arena::plan_report()
};

// Plans `cfg` for `device` with `world` data-parallel ranks as Trainer::setup does: the model at
// the config's micro-batch, sequence length, precision and recomputation, each rank's optimizer
// state (ZeRO-1 slices, owned matrices) and scratch laid over the activations; on planning
// arenas, so nothing is allocated and no device is needed. One entry per rank, in rank order.
// Not in the plan: the CUDA context and the libraries' workspaces (cuBLASLt, cuSOLVER, cuDNN).
std::vector<RankMemory> plan_run_memory(const RunConfig& cfg, Device device, int world);

}  // namespace mousse
