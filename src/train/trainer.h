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
#include "train/run_dir.h"

namespace mousse {

// The exit status of `mousse train` stopped by a signal after writing its checkpoint (sysexits'
// EX_TEMPFAIL: "try again later"): a requeue script resumes on 75, is done on 0, and has an
// error to read on anything else.
constexpr int kExitStopped = 75;

struct TrainOptions {
  bool resume = false;       // continue from the newest complete checkpoint, if any
  bool overwrite = false;    // a fresh start replaces the run found in log.dir (train/run_dir.h)
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
  // The signal that stopped run() early (with a checkpoint), or 0.
  int stop_signal() const { return stop_signal_; }

 private:
  void setup();
  // Every token id of the train and val shards below the vocabulary (data/token_scan.h); the
  // ranks share the scan. Returns the line start-up prints about it.
  std::string check_token_ids();
  // The stop signal any rank has received (the largest number), the same on every rank.
  int agreed_stop_signal();
  // Throws the divergence error: `what` happened, and the newest checkpoint to resume from.
  [[noreturn]] void diverged(const std::string& what);
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
  std::unique_ptr<RunDirectories> run_dirs_;  // rank 0: the locks on log.dir, checkpoint.dir
  int64_t grad_accum_ = 1;
  int64_t start_step_ = 0;
  double last_grad_norm_ = 0;
  int stop_signal_ = 0;
};

// Reserves every group's optimizer state (for the parameters each group holds: on a data-
// parallel rank, what that rank updates) and lets the optimizers' scratch (category
// "optimizer_scratch") use the activations' memory. The Trainer, `mousse bench` and the memory
// planner call it before arena.allocate(). Why the overlay is safe: trainer.cpp.
void reserve_optimizer_state(Arena& arena, OptimizerSetup& setup);

// Installs handlers of SIGINT, SIGTERM and SIGUSR1 (which Open MPI's mpirun forwards to every
// rank, where its own SIGINT/SIGTERM handling kills them a second later): the run finishes its
// step, writes a checkpoint and exits with kExitStopped.
void install_stop_handlers();
bool stop_requested();
int pending_stop_signal();  // the first stop signal received, or 0
const char* signal_name(int sig);  // "SIGUSR1"

}  // namespace mousse
