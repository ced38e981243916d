#pragma once
// Checkpoints: one safetensors file per save, `<dir>/ckpt_<step>.safetensors`, written
// atomically (temp file + rename). It holds the master weights under their canonical names
// (so `init_from` and `mousse export` read it directly), every optimizer state tensor under
// "optimizer/<name>", and in its metadata the step, data position, optimizer host state and
// the resolved config. --resume picks the newest complete file.
#include <string>

#include "backend/ops.h"
#include "core/arena.h"
#include "core/json_config.h"
#include "model/params.h"

namespace mousse {

struct CheckpointMeta {
  int64_t step = 0;           // optimizer steps completed
  int64_t data_position = 0;  // micro-batches consumed by this rank's train loader
  int world_size = 1;
  json optimizers;            // per group: {"type": ..., "extra": save_extra()}
  json config;                // the resolved run config
};

std::string checkpoint_path(const std::string& dir, int64_t step);
// Writes the checkpoint and deletes all but the `keep` newest in `dir`.
void save_checkpoint(const std::string& dir, int keep, const CheckpointMeta& meta, Ops& ops,
                     const ParamTable& params, const Arena& arena);
// The newest complete checkpoint in `dir`, or "" if none.
std::string latest_checkpoint(const std::string& dir);
CheckpointMeta read_checkpoint_meta(const std::string& path);
// Restores weights and optimizer state; errors clearly on any mismatch of names or shapes.
void load_checkpoint(const std::string& path, Ops& ops, ParamTable& params, const Arena& arena);
// Loads canonical weights (a checkpoint or an exported .safetensors) into params.
void load_weights(const std::string& path, Ops& ops, ParamTable& params);
// Writes the canonical weights of a checkpoint or weights file as f32 safetensors.
void export_weights(const std::string& checkpoint, const std::string& out);

}  // namespace mousse
