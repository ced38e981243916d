#pragma once
// The experiment config: one JSON file (plus --set overrides), validated up front. Unknown keys,
// wrong types and inconsistent values are errors naming the key and the file. README.md ("The config").
// documents every key.
#include <string>
#include <vector>

#include "core/json_config.h"
#include "model/model_config.h"
#include "model/params.h"
#include "train/schedule.h"

namespace mousse {

struct DataConfig {
  std::vector<std::string> train, val;  // glob patterns of llm.c .bin shards
  bool shuffle = false;
  int prefetch = 4;
};

struct BatchConfig {
  int64_t global_tokens = 0;  // tokens per optimizer step over all ranks, in [1, 2^62]
  int64_t micro_batch = 0;    // sequences per rank per forward/backward, in [1, 2^31 - 1]
  int64_t seq_len = 0;        // in [1, model.max_seq_len]
  // Derived: global_tokens / (micro_batch · seq_len · world_size).
  int64_t grad_accum(int world_size) const;
  // Whether global_tokens is a whole number of micro-batches on each of world_size ranks.
  bool splits_over(int world_size) const;
};

struct EvalConfig {
  int64_t every = 0;          // steps; 0 = only at the end
  int64_t tokens = 65536;     // validation tokens per evaluation
};

struct CheckpointConfig {
  int64_t every = 0;          // steps; 0 = only at the end
  int keep = 2;               // the K most recent are kept
  std::string dir;            // default: <log.dir>/checkpoints
};

struct LogConfig {
  std::string dir = "runs/default";
  int64_t every = 1;              // progress line every N steps (the JSONL gets every step)
  int64_t diagnostics_every = 0;  // optimizer diagnostics into the JSONL (0 = off)
};

struct RunConfig {
  std::string file;       // where it came from (for messages)
  json raw;               // after --set overrides
  std::string run_name = "run";
  ModelConfig model;
  DataConfig data;
  BatchConfig batch;
  json optimizer;         // validated later by the parameter groups (train/param_groups.h)
  Schedule schedule;
  int64_t steps = 0;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  LogConfig log;
  uint64_t seed = 1337;
  std::string device = "auto";     // cpu | cuda | auto
  std::string precision = "auto";  // auto (bf16 on cuda, f32 on cpu) | f32 | bf16 | f64
  std::string init_from;           // a .safetensors of canonical weights to start from
  // Activation recomputation (model/gpt.h Recompute): none | mlp | norms | all.
  std::string recompute = "none";

  // The config with presets expanded and defaults filled in, as saved with the run.
  json resolved() const;
  // The dtypes of a run of this config on `device` (key 'precision'; an error names the key when
  // the device cannot run it: f64 is the CPU's reference mode, bf16 needs CUDA).
  Precision precision_on(Device device) const;
};

// Applies "key.path=value" overrides (value parsed as JSON, else taken as a string).
void apply_overrides(json& config, const std::vector<std::string>& sets, const std::string& file);
json read_json_file(const std::string& path);
RunConfig parse_run_config(const json& j, const std::string& file);
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& sets);

}  // namespace mousse
