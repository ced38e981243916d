#pragma once
// Data parallelism over W ranks: which rank updates what, and the collectives of a step
// (docs/distributed.md: what each rank does in a step, and the communication volume).
//
// Every parameter is split among the ranks by a vector of counts (see communicator.h):
//  - elementwise optimizers (AdamW, Lion): ZeRO-1. Each parameter is split evenly; rank r keeps
//    the optimizer state of its slice only and updates it (the optimizer sees a flat 1-D view
//    named like the parameter; elementwise updates do not care about shape);
//  - matrix optimizers (Muon, SOAP, Mousse) need whole matrices: each matrix has one owner,
//    chosen by a deterministic greedy (largest cost first onto the least-loaded rank) over the
//    per-step flops of its update (Newton–Schulz, whitening rotations, factor EMAs, and the
//    amortised eigendecomposition / QR refresh). Its state lives on the owner only.
// One optimizer step, per parameter p with counts c_p:
//   reduce_scatter_sum(grad_p, c_p)          (during backward, per layer, as gradients are final)
//   global grad norm² = all_reduce_sum(Σ over this rank's parts of ‖grad‖²)   (one scalar)
//   each rank updates its parts
//   all_gather(weight_p, c_p)                (every rank holds the full new weights)
// With c_p = [0..n..0] (an owned matrix) the reduce-scatter is a reduce to the owner and the
// all-gather a broadcast from it.
#include <cstdint>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/json_config.h"
#include "dist/communicator.h"
#include "model/params.h"
#include "optim/optimizer.h"

namespace mousse {

struct ParamGroup;
struct OptimizerSetup;

// True for optimizers that need whole matrices (muon, soap, mousse).
bool needs_whole_matrices(const std::string& optimizer_type);
// Per-step flops of one matrix update (rows × cols) by `opt` (a matrix optimizer), including
// the amortised preconditioner refresh. Used only to balance ownership.
double matrix_update_cost(const Optimizer& opt, int64_t rows, int64_t cols);
// Owner of each item: largest cost first onto the least-loaded rank (ties: lower index, lower
// rank). Deterministic, so every rank computes the same assignment.
std::vector<int> assign_owners(const std::vector<double>& cost, int world);
// counts for an even split of n elements over `world` ranks (the first n % world get one more).
std::vector<int64_t> even_split(int64_t n, int world);

class DataParallel {
 public:
  // Replaces each group's params by the ones this rank updates (views for ZeRO-1 slices);
  // call before the optimizers' reserve_state.
  DataParallel(Communicator& comm, Ops& ops, ParamTable& table, OptimizerSetup& setup);
  // After the arena is allocated and the table bound: points the slice views at the buffers.
  void bind();

  // Gradients of a stage are final (hook from GPT::backward on the last micro-batch): starts
  // their reduction. Stages: "lm_head", "blocks.<l>", "wte".
  void grads_ready(const std::string& stage);
  // Reduces whatever was not reduced yet and waits for all reductions.
  void reduce_gradients();
  // Σ‖g‖² of the whole reduced gradient (each rank sums its parts, one scalar all-reduce).
  double grad_sum_squares();
  // All-gathers the updated weights so every rank holds the same full model.
  void gather_weights();

  // {"world_size": W, "owners": {matrix name: rank}} — stored with checkpoints.
  json plan() const;
  // For a parameter split by ZeRO-1: true, and the elements [*start, *start + *count) of its
  // *total (flat) that this rank updates and keeps optimizer state for. False for whole matrices.
  bool zero1_range(const std::string& param, int64_t* start, int64_t* count,
                   int64_t* total) const;
  // Lines for the start-up report: ownership and load balance per rank.
  std::string describe() const;
  // Elements this rank receives/sends per step in the collectives (for docs and reports).
  int64_t elements_per_step() const;

 private:
  struct Bucket {
    Param* param;
    std::string stage;
    std::vector<int64_t> counts;
    int owner = -1;  // whole-matrix owner, -1 for an even split
    bool reduced = false;
  };
  void reduce(Bucket& b);
  static std::string stage_of(const std::string& name);

  Communicator& comm_;
  Ops& ops_;
  ParamTable& table_;
  std::vector<Bucket> buckets_;
  std::vector<Param> slices_;      // ZeRO-1 views (stable: reserved up front)
  std::vector<double> load_;       // per rank: matrix-update flops owned
};

// Test hook: MOUSSE_TEST_FAIL="rank:step:mode" makes that rank fail at the start of that step
// (0-based): mode "exit" (exit status 3 without cleanup), "kill" (SIGKILL), "throw" (an error),
// "term" (SIGTERM to itself: the stop signal reaching that rank alone, to stop with a checkpoint).
void maybe_inject_failure(int rank, int64_t step);

}  // namespace mousse
