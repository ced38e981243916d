#pragma once
// Checkpoints: one safetensors file per save, `<dir>/ckpt_<step>.safetensors`, written
// atomically (temp file + rename). It holds the master weights under their canonical names
// (so `init_from` and `mousse export` read it directly), every optimizer state tensor under
// "optimizer/<name>", and in its metadata the step, data position, optimizer host state and
// the resolved config. --resume picks the newest complete file.
//
// With W > 1 ranks (data parallelism, src/dist/data_parallel.h) the optimizer state is sharded:
// rank r writes `ckpt_<step>.rank<r>-of-<W>.safetensors` (its optimizer state tensors under
// "optimizer/<name>" and its host-side state in the metadata), all ranks synchronise, and rank 0
// writes the main file last (weights and meta, world_size = W, no optimizer tensors); a main
// file on disk therefore means a complete checkpoint. `mousse export` and `init_from` read the
// main file alone.
//
// Nothing in a checkpoint depends on W but the split of the optimizer state over the files:
// state tensors keep their names on every rank ("<optimizer>.<state>.<parameter>"), a shard
// records the element range of each ZeRO-1 slice it holds ("layout"), and the data position is
// stored as micro-batches of all ranks together. So a run resumes on any number of ranks
// (train/reshard.h reads each rank's part of the state from wherever it was saved).
#include <string>

#include "backend/ops.h"
#include "core/arena.h"
#include "core/json_config.h"
#include "model/params.h"

namespace mousse {

struct CheckpointMeta {
  int64_t step = 0;           // optimizer steps completed
  int64_t data_position = 0;  // micro-batches consumed by each rank's train loader
  int64_t data_batches = 0;   // micro-batches consumed by all ranks together (position × W)
  int world_size = 1;
  json optimizers;            // per group: {"type": ..., "extra": save_extra()}
  json config;                // the resolved run config
};

std::string checkpoint_path(const std::string& dir, int64_t step);
// Writes the checkpoint and deletes all but the `keep` newest in `dir` (with their shard files).
// with_optimizer_state = false leaves the optimizer tensors to the per-rank shard files.
void save_checkpoint(const std::string& dir, int keep, const CheckpointMeta& meta, Ops& ops,
                     const ParamTable& params, const Arena& arena,
                     bool with_optimizer_state = true);
// The shard file of `rank` of `world` next to the main checkpoint file `main_path`.
std::string checkpoint_shard_path(const std::string& main_path, int rank, int world);
// Writes this rank's optimizer state (arena category "optimizer"), its data-parallel plan, the
// global element range of each state tensor (`layout`: {name: [offset, total]}, see
// state_layout in train/reshard.h) and its host-side optimizer state (`optimizers`: per group
// {"type", "extra"}) atomically.
void save_checkpoint_shard(const std::string& dir, int64_t step, int rank, int world,
                           const json& plan, const json& layout, const json& optimizers, Ops& ops,
                           const Arena& arena);
// The newest complete checkpoint in `dir`, or "" if none.
std::string latest_checkpoint(const std::string& dir);
CheckpointMeta read_checkpoint_meta(const std::string& path);
// Loads weights into params from anything train/weight_source.h opens (a checkpoint or its
// directory, an exported .safetensors, a Hugging Face directory), after checking that its tensors
// are exactly the model's.
void load_weights(const std::string& path, Ops& ops, ParamTable& params);

}  // namespace mousse
