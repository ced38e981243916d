#pragma once
// The training loop: data → forward/backward (with gradient accumulation) → gradient averaging
// across ranks → clipping → one optimizer step per group → metrics, evaluation, checkpoints.
#include <memory>
#include <string>

#include "backend/ops.h"
#include "core/arena.h"
#include "data/data_loader.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "model/gpt.h"
#include "train/host_batch.h"
#include "train/metrics.h"
#include "train/param_groups.h"
#include "train/run_config.h"

namespace mousse {

struct TrainOptions {
  bool resume = false;       // continue from the newest complete checkpoint, if any
  int64_t stop_after = -1;   // stop (with a checkpoint) after this many steps: for tests
  bool quiet = false;        // no per-step progress lines
};

class Trainer {
 public:
  Trainer(RunConfig cfg, TrainOptions opt, Communicator& comm);
  ~Trainer();
  // Runs to cfg.steps (or stop_after). Returns the final validation loss (NaN if no val data).
  double run();

  // Pieces used by `mousse bench` and tests.
  Ops& ops() { return *ops_; }
  GPT& model() { return *model_; }
  Arena& arena() { return *arena_; }
  OptimizerSetup& optimizers() { return setup_; }
  // One optimizer step of training (all micro-batches); returns the mean train loss.
  double train_step(int64_t step);
  // Gradient norm and clipping, one step per optimizer group, the weights gathered and synced.
  void optimizer_step(int64_t step, bool diagnostics);
  double evaluate();
  int64_t grad_accum() const { return grad_accum_; }
  double last_grad_norm() const { return last_grad_norm_; }

 private:
  void setup();
  // Reads the next micro-batch of `data` into the page-locked host buffers and uploads it.
  void upload_next_batch(DataLoader& data);
  void save(int64_t step);
  bool rank0() const { return comm_.rank() == 0; }

  RunConfig cfg_;
  TrainOptions opt_;
  Communicator& comm_;
  std::unique_ptr<Ops> ops_;
  std::unique_ptr<Arena> arena_;
  std::unique_ptr<GPT> model_;
  OptimizerSetup setup_;
  std::unique_ptr<DataParallel> dp_;  // world size > 1: sharded reduction and updates
  std::unique_ptr<DataLoader> train_data_, val_data_;
  std::unique_ptr<MetricsLog> log_;
  std::unique_ptr<HostBatch> host_batch_;  // page-locked inputs/targets (dies before ops_)
  int64_t grad_accum_ = 1;
  int64_t start_step_ = 0;
  double last_grad_norm_ = 0;
};

// Reserves every group's optimizer state (for the parameters each group holds: on a data-
// parallel rank, what that rank updates) and lets the optimizers' scratch (category
// "optimizer_scratch") use the activations' memory. The Trainer, `mousse bench` and the memory
// planner call it before arena.allocate(). Why the overlay is safe: trainer.cpp.
void reserve_optimizer_state(Arena& arena, OptimizerSetup& setup);

// Installs SIGINT/SIGTERM handlers: the run finishes its step, writes a checkpoint and exits.
void install_stop_handlers();
bool stop_requested();

}  // namespace mousse
