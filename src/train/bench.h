#pragma once
// `mousse bench`: throughput of the full training step (forward, backward, optimizer) of a run
// config, without checkpoints, evaluation or logs. Two passes over the same model:
//   1. throughput: `steps` steps exactly as the trainer runs them (host synchronisation only
//      where training has it: the loss read-back and the gradient norm) → tokens/s and MFU;
//   2. phases: `phase_steps` steps with a device synchronisation around forward, backward and
//      the optimizer step (bench mode only) → per-phase times.
// MFU = ModelConfig::flops_per_token(T) × tokens/s / the device's dense bf16 peak
// (Ops::peak_flops_bf16; n/a when the backend does not know it, e.g. on the CPU).
#include <cstdint>
#include <string>

#include "core/json_config.h"
#include "train/run_config.h"

namespace mousse {

struct BenchOptions {
  int64_t steps = 20;       // timed steps (throughput pass)
  int64_t warmup = 3;       // untimed steps first (cuBLASLt heuristics, scratch growth, caches)
  int64_t phase_steps = 5;  // steps of the phase pass (0 = skip it)
  // 3. profile: `profile_steps` steps through ProfilingOps (backend/profiling_ops.h), every op
  //    timed between two synchronisations → a table per phase, op and GEMM shape (0 = skip it).
  int64_t profile_steps = 0;
  // Token source: "synthetic" (seeded uniform random tokens, no data files needed),
  // "config" (the config's data.train shards), "auto" (the shards if they exist, else synthetic).
  std::string data = "auto";
  std::string json_path;    // write the summary here as JSON ("" = don't)
  bool quiet = false;
};

struct BenchResult {
  std::string device, config, data;
  int64_t tokens_per_step = 0, parameters = 0;
  double step_s = 0, tokens_per_s = 0;
  double flops_per_token = 0, peak_flops = 0, mfu = -1;  // mfu < 0: n/a
  double forward_s = 0, backward_s = 0, optimizer_s = 0;  // per step, phase pass
  // Host time to issue each phase (from its start to the return of its last call, before the
  // closing synchronisation): close to the phase's time where the host, not the device, is
  // the bottleneck (many small launches).
  double forward_issue_s = 0, backward_issue_s = 0, optimizer_issue_s = 0;
  double arena_bytes = 0, device_bytes_used = 0, device_bytes_total = 0;
  double loss_first = 0, loss_last = 0;
  json to_json() const;
};

BenchResult run_bench(const RunConfig& cfg, const BenchOptions& opt);

}  // namespace mousse
