#include "train/trainer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "backend/select.h"
#include "data/token_scan.h"
#include "train/atomic_file.h"
#include "train/checkpoint.h"
#include "train/reshard.h"
#include "train/state_check.h"

namespace mousse {

namespace {
std::atomic<int> g_stop_signal{0};
std::atomic<bool> g_announce_stop{true};  // rank 0 (or the single process) says it got one
extern "C" void on_stop_signal(int sig) {
  int none = 0;
  if (!g_stop_signal.compare_exchange_strong(none, sig)) return;  // the first one counts
  if (!g_announce_stop.load()) return;
  // Said at once (write() is async-signal-safe): the step may take a while to finish.
  const char* msg =
      sig == SIGINT    ? "\nmousse: SIGINT received: stopping after this step with a checkpoint\n"
      : sig == SIGTERM ? "\nmousse: SIGTERM received: stopping after this step with a checkpoint\n"
                       : "\nmousse: SIGUSR1 received: stopping after this step with a checkpoint\n";
  ssize_t ignored = ::write(2, msg, std::strlen(msg));
  (void)ignored;
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// The saved data position and schedule only mean the same thing under the same data order,
// batch shape, model and step count: refuse a resume that changed any of them.
static void check_resume_compatible(const std::string& ckpt, const json& saved, const json& now) {
  const char* keys[][2] = {{"model", nullptr},       {"data", "train"},
                           {"data", "shuffle"},      {"batch", "global_tokens"},
                           {"batch", "micro_batch"}, {"batch", "seq_len"},
                           {"steps", nullptr},       {"seed", nullptr},
                           {"schedule", nullptr}};
  for (auto& k : keys) {
    const json* a = saved.contains(k[0]) ? &saved[k[0]] : nullptr;
    const json* b = now.contains(k[0]) ? &now[k[0]] : nullptr;
    std::string name = k[0];
    if (k[1]) {
      name += std::string(".") + k[1];
      a = a && a->contains(k[1]) ? &(*a)[k[1]] : nullptr;
      b = b && b->contains(k[1]) ? &(*b)[k[1]] : nullptr;
    }
    if (!a || !b || *a != *b)
      fail(ckpt, ": was written with ", name, " = ", a ? a->dump() : "(none)",
           ", this config has ", b ? b->dump() : "(none)",
           ": resume with the config the run started with (see its config.json)");
  }
}

// The optimizers' scratch shares the activations' memory: the arena holds max(activations,
// optimizer_scratch) instead of their sum (the paper's 162m configs on CUDA: 324 MiB less with
// Muon, ~0.5 GiB less with Mousse). Safe because the two are never alive at the same time, and
// all the work below is queued on the backend's one stream, in program order:
//  - activations live from a micro-batch's upload (tokens, targets) through forward and backward.
//    Their last use in a step is the loss, read on the host (ops.sum of the loss accumulator, a
//    synchronising read) at the end of train_step, before optimizer_step. After the optimizer
//    step nothing reads one without writing it first: the next train_step and evaluate()
//    re-upload tokens and targets and fill the loss accumulator, and forward() (then backward())
//    writes every other buffer before reading it. Checkpoints save no activations.
//  - optimizer_scratch is a temporary of one Optimizer::step() (Muon, SOAP, Mousse and their
//    Orthogonalizer): each writes a scratch view before reading it and keeps nothing in it from
//    one step to the next; state that must survive lives in category "optimizer" (the only one
//    checkpoints save). AdamW and Lion have no scratch.
//  - DataParallel's collectives (NCCL: on a stream of their own) touch only gradients and
//    weights, never either category.
// What would break it: an optimizer keeping a value in scratch across steps; optimizer work on
// a side stream or thread (e.g. a preconditioner refresh overlapping the next forward) that uses
// overlaid scratch (give it memory of its own); reading the logits or losses after
// optimizer_step; overlapping one step's optimizer with the next step's forward. The test
// "the overlaid memory is dead at the optimizer step" (tests/core/test_arena.cpp) overwrites both
// categories with NaN at those two points and checks the losses and weights are unchanged.
void reserve_optimizer_state(Arena& arena, OptimizerSetup& setup) {
  for (ParamGroup& g : setup.groups) g.optimizer->reserve_state(arena, g.params);
  arena.overlay("optimizer_scratch", "activations");
}

void install_stop_handlers() {
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  // reads and writes in progress go on
    sigaction(sig, &sa, nullptr);
  }
}
bool stop_requested() { return g_stop_signal.load() != 0; }
int pending_stop_signal() { return g_stop_signal.load(); }
const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

Trainer::Trainer(RunConfig cfg, TrainOptions opt, Communicator& comm)
    : cfg_(std::move(cfg)), opt_(opt), comm_(comm) {
  setup();
}

Trainer::~Trainer() = default;

void Trainer::upload_next_batch(DataLoader& data) {
  host_batch_->upload([&](int32_t* x, int32_t* y) { data.next(x, y); }, model_->inputs(),
                      model_->targets());
}

void Trainer::setup() {
  const int world = comm_.world_size();
  const BatchConfig& b = cfg_.batch;
  if (!b.splits_over(world))
    fail(cfg_.file, ": key 'batch.global_tokens': ", b.global_tokens,
         " is not a multiple of micro_batch × seq_len × ranks = ", b.micro_batch * b.seq_len,
         " × ", world);
  grad_accum_ = b.grad_accum(world);

  // The run's directories before any work (train/run_dir.h): writable, locked, not another
  // run's. Rank 0 writes the logs and the main checkpoint file; every rank writes its shard.
  g_announce_stop.store(rank0());
  if (rank0()) {
    RunDirOptions dirs;
    dirs.resume = opt_.resume;
    dirs.overwrite = opt_.overwrite;
    run_dirs_ = std::make_unique<RunDirectories>(cfg_, dirs);
  } else {
    check_writable_directory(cfg_.checkpoint.dir, "checkpoint.dir");
  }

  ops_ = make_ops(cfg_.device);
  Precision prec = cfg_.precision_on(ops_->device());
  arena_ = std::make_unique<Arena>(*ops_);
  model_ = std::make_unique<GPT>(cfg_.model, prec, b.micro_batch, b.seq_len, *arena_,
                                 Recompute::parse(cfg_.recompute));
  setup_ = make_optimizer_setup(cfg_.optimizer, cfg_.file, model_->params());
  // More than one rank: each group keeps only what this rank updates (ZeRO-1 slices, owned
  // matrices), so the optimizers reserve state for those only.
  if (comm_.distributed())
    dp_ = std::make_unique<DataParallel>(comm_, *ops_, model_->params(), setup_);
  reserve_optimizer_state(*arena_, setup_);
  arena_->allocate();
  model_->bind();
  if (dp_) dp_->bind();

  // Where to start: the newest checkpoint (--resume), init_from, or a fresh init.
  std::string ckpt = opt_.resume ? latest_checkpoint(cfg_.checkpoint.dir) : "";
  int64_t data_position = 0;
  std::string resharded;  // the start-up line of a resume on another number of ranks
  int saved_world = world;
  if (!ckpt.empty()) {
    CheckpointMeta meta = read_checkpoint_meta(ckpt);
    check_resume_compatible(ckpt, meta.config, cfg_.resolved());
    // Weights from the main file; each rank's optimizer state from wherever the ranks that
    // wrote the checkpoint saved it (any number of them: train/reshard.h).
    load_weights(ckpt, *ops_, model_->params());
    resharded = load_optimizer_state(ckpt, meta, comm_, dp_.get(), setup_, *ops_, *arena_);
    start_step_ = meta.step;
    saved_world = meta.world_size;
    data_position = resume_data_position(ckpt, meta, world);
    model_->sync_compute_weights(*ops_, cfg_.seed + uint64_t(start_step_));
  } else if (!cfg_.init_from.empty()) {
    load_weights(cfg_.init_from, *ops_, model_->params());
    model_->sync_compute_weights(*ops_, cfg_.seed);
  } else {
    model_->init_weights(*ops_, cfg_.seed);
  }
  if (opt_.resume && ckpt.empty() && rank0())
    std::printf("no checkpoint in %s: starting from step 0\n", cfg_.checkpoint.dir.c_str());

  DataLoaderOptions d;
  d.patterns = cfg_.data.train;
  d.batch_size = b.micro_batch;
  d.seq_len = b.seq_len;
  d.rank = comm_.rank();
  d.world_size = world;
  d.shuffle = cfg_.data.shuffle;
  d.seed = cfg_.seed;
  d.vocab_size = cfg_.model.vocab_size;
  d.prefetch = cfg_.data.prefetch;
  train_data_ = std::make_unique<DataLoader>(d);
  train_data_->seek(data_position);
  if (!cfg_.data.val.empty() && cfg_.eval.tokens > 0) {
    d.patterns = cfg_.data.val;
    d.shuffle = false;
    val_data_ = std::make_unique<DataLoader>(d);
  }
  host_batch_ = std::make_unique<HostBatch>(*ops_, b.micro_batch * b.seq_len);
  const std::string token_check = check_token_ids();

  if (rank0()) {
    // A resumed run keeps its log up to the step it resumes from (0 without a checkpoint).
    log_ = std::make_unique<MetricsLog>(cfg_.log.dir, opt_.resume ? start_step_ : -1);
    write_file_atomic(cfg_.log.dir + "/config.json", cfg_.resolved().dump(2) + "\n");
    const ModelConfig& m = cfg_.model;
    std::printf("mousse: %s | %s\n", cfg_.run_name.c_str(), ops_->name().c_str());
    std::printf("model: %s, %d layers, d_model %d, %d heads, %.2fM parameters, %s activations\n",
                m.preset.c_str(), m.n_layer, m.d_model, m.n_head, m.num_parameters() / 1e6,
                dtype_name(prec.activation));
    std::printf("batch: %lld tokens/step = %lld ranks × %lld micro-steps × %lld × %lld tokens\n",
                (long long)b.global_tokens, (long long)world, (long long)grad_accum_,
                (long long)b.micro_batch, (long long)b.seq_len);
    std::printf("train data: %s\n", train_data_->describe().c_str());
    if (val_data_) std::printf("val data: %s\n", val_data_->describe().c_str());
    std::printf("%s", token_check.c_str());
    for (ParamGroup& g : setup_.groups)
      std::printf("optimizer %-9s lr %.3g × %.3g: %s (%zu tensors)\n", g.name.c_str(), g.lr,
                  g.lr_scale, g.optimizer->describe().c_str(), g.params.size());
    if (dp_) std::printf("%s", dp_->describe().c_str());
    std::printf("%s", arena_->plan_report().c_str());
    if (!ckpt.empty()) std::printf("resumed from %s at step %lld\n", ckpt.c_str(), (long long)start_step_);
    if (!resharded.empty()) std::printf("%s\n", resharded.c_str());
    std::printf("resolved config: %s/config.json\n", cfg_.log.dir.c_str());
    std::fflush(stdout);
    json run = {{"type", "run"},        {"step", start_step_},
                {"device", ops_->name()}, {"parameters", cfg_.model.num_parameters()},
                {"world_size", world},  {"grad_accum", grad_accum_},
                {"config", cfg_.resolved()}};
    for (ParamGroup& g : setup_.groups) run["optimizers"][g.name] = g.optimizer->describe();
    if (saved_world != world) run["resumed_from_world_size"] = saved_world;
    log_->write(run);
  }
}

std::string Trainer::check_token_ids() {
  std::vector<ShardHeader> shards = train_data_->shards();
  if (val_data_) shards.insert(shards.end(), val_data_->shards().begin(), val_data_->shards().end());
  const int world = comm_.world_size();
  const TokenScan scan = mousse::check_token_ids(shards, cfg_.model.vocab_size, comm_.rank(), world);
  const int max_id = dp_ ? int(comm_.all_reduce_max(double(scan.max_id))) : scan.max_id;
  char line[256];
  std::snprintf(line, sizeof line,
                "token ids: all < vocab_size %lld (largest %d); %s tokens of %zu shard%s scanned "
                "in %.3fs (%.2f GB/s%s)\n",
                (long long)cfg_.model.vocab_size, max_id, format_count(double(scan.tokens)).c_str(),
                shards.size(), shards.size() == 1 ? "" : "s", scan.seconds,
                2.0 * double(scan.tokens) / std::max(scan.seconds, 1e-9) / 1e9,
                world > 1 ? ", rank 0's share" : "");
  return line;
}

int Trainer::agreed_stop_signal() {
  const int local = pending_stop_signal();
  return dp_ ? int(comm_.all_reduce_max(double(local))) : local;
}

void Trainer::diverged(const std::string& what) {
  const std::string last = latest_checkpoint(cfg_.checkpoint.dir);
  if (last.empty())
    fail(what, ": the run diverged, before its first checkpoint. Lower the learning rate or ",
         "raise warmup and start again (--overwrite replaces this run, or use a new log.dir).");
  fail(what, ": the run diverged. The newest checkpoint is ", last, "; its weights and optimizer ",
       "state are finite (no checkpoint is written otherwise). Resume from it with a lower ",
       "learning rate or more warmup (--resume --set optimizer.<group>.lr=...), or start again ",
       "(--overwrite).");
}

double Trainer::train_step(int64_t step) {
  maybe_inject_failure(comm_.rank(), step);  // tests only (MOUSSE_TEST_FAIL)
  GPT& model = *model_;
  const int64_t tokens_per_micro = cfg_.batch.micro_batch * cfg_.batch.seq_len;
  const double grad_scale = 1.0 / double(tokens_per_micro * grad_accum_ * comm_.world_size());
  model.zero_grads(*ops_);
  ops_->fill(model.loss_accumulator(), 0.0);
  for (int64_t micro = 0; micro < grad_accum_; micro++) {
    upload_next_batch(*train_data_);
    model.forward(*ops_, /*compute_grad=*/true, grad_scale);
    if (dp_ && micro + 1 == grad_accum_)  // last micro-batch: reduce layers as they finish
      model.on_grads_ready = [this](int s) {
        dp_->grads_ready(s == cfg_.model.n_layer ? "lm_head" : "blocks." + std::to_string(s));
      };
    model.backward(*ops_);
    model.on_grads_ready = nullptr;
  }
  // Gradients were scaled by 1/(all tokens of the step), so the sum over ranks is the mean.
  // (A single process has nothing to reduce; every MPI/NCCL run goes through dp_.)
  if (dp_) dp_->reduce_gradients();  // reduce-scatter: each rank holds the sums of what it updates
  double loss_sum = comm_.all_reduce_sum(ops_->sum(model.loss_accumulator()));
  return loss_sum / double(tokens_per_micro * grad_accum_ * comm_.world_size());
}

void Trainer::optimizer_step(int64_t step, bool diagnostics) {
  const double norm = std::sqrt(dp_ ? dp_->grad_sum_squares()
                                    : ops_->sum_squares(model_->params().flat_grads()));
  last_grad_norm_ = norm;
  double clip_scale = 1.0;
  if (setup_.grad_clip > 0 && norm > setup_.grad_clip) clip_scale = setup_.grad_clip / norm;
  const uint64_t copy_seed = cfg_.seed + uint64_t(step) + 1;
  const bool copied = step_optimizers(*ops_, setup_, step, cfg_.schedule.factor(step, cfg_.steps),
                                      clip_scale, diagnostics, /*fuse_compute_copy=*/!dp_,
                                      copy_seed);
  if (dp_) dp_->gather_weights();
  if (!copied) model_->sync_compute_weights(*ops_, copy_seed);
}

double Trainer::evaluate() {
  if (!val_data_) return NAN;
  GPT& model = *model_;
  const int64_t per_batch = cfg_.batch.micro_batch * cfg_.batch.seq_len;
  const int64_t world = comm_.world_size();
  // Every rank evaluates its stride of the first eval.tokens tokens of the val shards.
  int64_t batches = std::max<int64_t>(1, cfg_.eval.tokens / (per_batch * world));
  val_data_->seek(0);
  ops_->fill(model.loss_accumulator(), 0.0);
  for (int64_t i = 0; i < batches; i++) {
    upload_next_batch(*val_data_);
    model.forward(*ops_, /*compute_grad=*/false, 1.f);
  }
  double sum = comm_.all_reduce_sum(ops_->sum(model.loss_accumulator()));
  return sum / double(batches * per_batch * world);
}

void Trainer::save(int64_t step) {
  // Never a checkpoint of a diverged state: the update after the last finite loss can make the
  // weights or the optimizer state NaN. Every rank checks its optimizer state (rank 0 the weights
  // too), and they agree before anyone writes.
  const std::string bad = first_non_finite(*ops_, model_->params(), *arena_, /*weights=*/rank0());
  const bool any_bad = dp_ ? comm_.all_reduce_max(bad.empty() ? 0.0 : 1.0) > 0.0 : !bad.empty();
  if (any_bad)
    diverged("after step " + std::to_string(step) + " the " +
             (bad.empty() ? std::string("optimizer state of another rank") : bad) +
             " holds NaN or Inf, so its checkpoint was not written");
  json extras = json::object();  // each group's optimizer type and host-side state
  for (ParamGroup& g : setup_.groups)
    extras[g.name] = {{"type", g.optimizer->type()}, {"extra", g.optimizer->save_extra()}};
  if (dp_) {
    // Every rank writes its optimizer shard; then rank 0 writes the main file (weights, meta)
    // last, so a main file on disk means a complete checkpoint.
    save_checkpoint_shard(cfg_.checkpoint.dir, step, comm_.rank(), comm_.world_size(),
                          dp_->plan(), state_layout(local_state_parts(*arena_, dp_.get())),
                          extras, *ops_, *arena_);
    comm_.barrier();
  }
  if (!rank0()) return;
  CheckpointMeta meta;
  meta.step = step;
  meta.data_position = train_data_->position();
  meta.data_batches = train_data_->position() * comm_.world_size();
  meta.world_size = comm_.world_size();
  meta.config = cfg_.resolved();
  meta.optimizers = extras;
  double t0 = now_seconds();
  save_checkpoint(cfg_.checkpoint.dir, cfg_.checkpoint.keep, meta, *ops_, model_->params(),
                  *arena_, /*with_optimizer_state=*/!dp_);
  std::string path = checkpoint_path(cfg_.checkpoint.dir, step);
  std::printf("checkpoint: %s (%.1fs)\n", path.c_str(), now_seconds() - t0);
  std::fflush(stdout);
  log_->write({{"type", "checkpoint"}, {"step", step}, {"path", path}});
  log_->sync();  // the log up to a checkpoint survives what the checkpoint survives
}

double Trainer::run() {
  const int64_t total = cfg_.steps;
  const int64_t end = opt_.stop_after >= 0 ? std::min(total, opt_.stop_after) : total;
  const int64_t tokens_per_step = cfg_.batch.global_tokens;
  const double t_start = now_seconds();
  double val_loss = NAN;
  double ema_step_s = 0;
  int64_t step = start_step_;
  stop_signal_ = agreed_stop_signal();  // one during start-up: no step, nothing new to save
  if (stop_signal_ && rank0())
    std::printf("stopped by %s before the first step (at step %lld)\n", signal_name(stop_signal_),
                (long long)step);
  for (; step < end && !stop_signal_; step++) {
    const double t0 = now_seconds();
    const bool diag = cfg_.log.diagnostics_every > 0 && (step + 1) % cfg_.log.diagnostics_every == 0;
    const double loss = train_step(step);
    if (!std::isfinite(loss))
      diverged("the training loss is " + std::to_string(loss) + " at step " + std::to_string(step + 1));
    optimizer_step(step, diag);
    // Each rank's optimizers report on the matrices / slices it updates: rank 0 merges them.
    json diag_groups = json::object();
    if (diag) {
      for (ParamGroup& g : setup_.groups) diag_groups[g.name] = g.optimizer->diagnostics();
      if (dp_) {
        std::vector<json> per_rank;
        for (const std::string& r : comm_.gather_to_root(diag_groups.dump()))
          per_rank.push_back(json::parse(r));
        if (rank0()) diag_groups = merge_rank_diagnostics(per_rank);
      }
    }
    const double dt = now_seconds() - t0;
    ema_step_s = step == start_step_ ? dt : 0.9 * ema_step_s + 0.1 * dt;
    const int64_t done = step + 1;
    const double factor = cfg_.schedule.factor(step, total);
    if (rank0()) {
      json rec = {{"type", "train"}, {"step", done}, {"loss", loss},
                  {"grad_norm", last_grad_norm_}, {"tokens", done * tokens_per_step},
                  {"step_s", dt}, {"tokens_per_s", tokens_per_step / dt},
                  {"elapsed_s", now_seconds() - t_start}};
      for (ParamGroup& g : setup_.groups) rec["lr"][g.name] = g.lr_at(factor);
      log_->write(rec);
      if (diag) {
        json d = {{"type", "diagnostics"}, {"step", done}, {"groups", diag_groups}};
        log_->write(d);
      }
      if (!opt_.quiet && (done % cfg_.log.every == 0 || done == end || done == 1)) {
        const double lr0 = setup_.groups[0].lr_at(factor);
        std::printf("step %6lld/%lld | loss %.4f | lr %.2e | %s tok/s | norm %.3f | %s | eta %s\n",
                    (long long)done, (long long)total, loss, lr0,
                    format_count(tokens_per_step / dt).c_str(), last_grad_norm_,
                    format_duration(now_seconds() - t_start).c_str(),
                    format_duration(ema_step_s * double(total - done)).c_str());
        std::fflush(stdout);
      }
    }
    const bool last = done == total;
    const bool stable_end = cfg_.schedule.type == "wsd" && done == cfg_.schedule.stable_end(total);
    if ((cfg_.eval.every > 0 && done % cfg_.eval.every == 0) || last || stable_end) {
      val_loss = evaluate();
      if (rank0() && std::isfinite(val_loss)) {
        std::printf("step %6lld/%lld | val loss %.4f\n", (long long)done, (long long)total, val_loss);
        std::fflush(stdout);
        json rec = {{"type", "eval"}, {"step", done}, {"val_loss", val_loss},
                    {"tokens", done * tokens_per_step}};
        if (stable_end) rec["stable_end"] = true;
        log_->write(rec);
      }
    }
    // A signal may reach the ranks in different steps: they agree (one scalar all-reduce per
    // step) so that all of them save the same step and stop together, never one alone. One
    // during the last step changes nothing: the run has finished.
    stop_signal_ = done < total ? agreed_stop_signal() : 0;
    const bool stopping = stop_signal_ || done == end;
    if ((cfg_.checkpoint.every > 0 && done % cfg_.checkpoint.every == 0) || last || stopping)
      save(done);
    if (stop_signal_ && rank0())
      std::printf("stopped by %s after step %lld (checkpoint written): exit status %d; continue "
                  "with --resume\n", signal_name(stop_signal_), (long long)done, kExitStopped);
  }
  if (rank0()) {
    json rec = {{"type", "end"}, {"step", step}, {"val_loss", std::isfinite(val_loss) ? json(val_loss) : json(nullptr)},
                {"elapsed_s", now_seconds() - t_start}, {"completed", step == total}};
    if (stop_signal_) rec["stopped_by"] = signal_name(stop_signal_);
    log_->write(rec);
    log_->close();
    std::fflush(stdout);
  }
  // No rank leaves before rank 0 has written everything: a rank exiting with kExitStopped makes
  // mpirun end the others at once.
  if (dp_) comm_.barrier();
  return val_loss;
}

}  // namespace mousse
