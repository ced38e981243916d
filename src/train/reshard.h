#pragma once
// Resuming a checkpoint on any number of ranks (W ranks wrote it, W' resume it; W, W' >= 1).
//
// A run's optimizer state is a set of named state tensors, "<optimizer>.<state>.<parameter>"
// (optim/optimizer.h), the same names on every rank. How they are spread over ranks is the only
// thing in a checkpoint that depends on W:
//  - a matrix optimizer's (Muon, SOAP, Mousse) state of a matrix is whole, on the matrix's owner;
//  - an elementwise optimizer's (AdamW, Lion) state of a ZeRO-1 parameter is cut into W slices,
//    each stored with its element range of the whole tensor (the shard's "layout");
//  - a single process (no data parallelism) stores every tensor whole in the main file.
// A rank of the resumed run computes the parts it holds under its own ownership and slicing
// (exactly as a fresh W'-rank run would), finds for each the stored pieces that overlap it and
// reads only those elements. Host-side optimizer state (step counters, Mousse's per-matrix
// condition numbers and pending-refresh status) is merged by each optimizer
// (Optimizer::merge_extra). Every rank also checks that, over all ranks, the elements it loads
// add up to what the checkpoint holds: a checkpoint of another optimizer configuration is
// refused, not half loaded.
//
// The data position carries over as micro-batches of all ranks together (CheckpointMeta::
// data_batches): rank r of W' continues at data_batches / W', so the resumed run reads the same
// global batches at each step as the run would have on W ranks (data/data_loader.h).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/arena.h"
#include "core/json_config.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "train/checkpoint.h"
#include "train/param_groups.h"

namespace mousse {

// One optimizer state tensor of this rank and where it sits in the run's state: elements
// [offset, offset + tensor->numel()) of the whole tensor `name` of `total` elements.
struct StatePart {
  std::string name;
  const Tensor* tensor = nullptr;
  int64_t offset = 0, total = 0;
};

// The parameter a state tensor belongs to: its name after "<optimizer>.<state>." ("" if the name
// does not have that form).
std::string state_parameter(const std::string& state_name);

// This rank's optimizer state (arena category "optimizer"): ZeRO-1 slices (dp's zero1_range)
// with their ranges, everything else whole. dp may be null (a single process).
std::vector<StatePart> local_state_parts(const Arena& arena, const DataParallel* dp);

// {name: [offset, total]} of every part: the "layout" a checkpoint shard records.
json state_layout(const std::vector<StatePart>& parts);

// What a checkpoint holds of each state tensor, and which elements a part needs from where.
class StateIndex {
 public:
  // A piece in file `file`: elements [offset, offset + count) of `name` (of `total` elements).
  void add(const std::string& name, int file, int64_t offset, int64_t count, int64_t total);
  // A piece of a shard without a layout (written before resharding existed): rank `rank` of
  // `world` holds the whole tensor, or its even ZeRO-1 slice when count < the tensor's total
  // (data_parallel.h's even_split, resolved once a part names the total).
  void add_unplaced(const std::string& name, int file, int rank, int world, int64_t count);

  struct Read {
    int file;
    int64_t first;  // element of the stored piece
    int64_t dst;    // element of the part
    int64_t count;
  };
  // The reads that fill elements [offset, offset + count) of `name` (of `total`): errors naming
  // `where` when the name is missing, a total differs, or the pieces leave a gap.
  std::vector<Read> reads(const std::string& name, int64_t offset, int64_t count, int64_t total,
                          const std::string& where) const;
  // Elements of all pieces together.
  int64_t elements() const;
  size_t tensors() const { return pieces_.size(); }

 private:
  struct Piece {
    int file;
    int64_t offset, count, total;  // offset, total -1: unplaced (rank of world, even split)
    int rank = 0, world = 1;
  };
  std::map<std::string, std::vector<Piece>> pieces_;
};

// The metadata of rank `rank`'s optimizer shard of a checkpoint written by `world` ranks at
// `step` ("mousse_shard": rank, world_size, step, optimizers, layout), read with typed checks:
// corruption, or a shard of another checkpoint, is an error naming the file and the field.
json read_shard_meta(const std::string& path, int rank, int world, int64_t step);

// Restores this rank's optimizer state tensors and every group's host-side state from the
// checkpoint `main_path` (meta: its metadata), whatever number of ranks wrote it. Checks each
// group's optimizer type. Errors name the file (a missing shard, a missing or mis-shaped state
// tensor, another optimizer configuration). Collective: every rank calls it. Returns the
// start-up line for a resharded resume (from W to W' ranks, how many tensors moved), or "".
std::string load_optimizer_state(const std::string& main_path, const CheckpointMeta& meta,
                                 Communicator& comm, const DataParallel* dp,
                                 OptimizerSetup& setup, Ops& ops, const Arena& arena);

// This rank's train-loader position (its micro-batches consumed) when a checkpoint resumes on
// `world` ranks; errors naming `path` when the saved position does not divide among them.
int64_t resume_data_position(const std::string& path, const CheckpointMeta& meta, int world);

}  // namespace mousse
