#include "train/bench.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <vector>

#include "backend/profiling_ops.h"
#include "backend/select.h"
#include "core/arena.h"
#include "data/data_loader.h"
#include "model/gpt.h"
#include "train/host_batch.h"
#include "train/metrics.h"
#include "train/param_groups.h"
#include "train/trainer.h"

namespace mousse {

namespace {

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// The token source: a DataLoader over the config's shards, or seeded random tokens.
class BenchData {
 public:
  BenchData(const RunConfig& cfg, const std::string& mode, std::string& described) {
    const int64_t n = cfg.batch.micro_batch * cfg.batch.seq_len;
    if (mode != "synthetic") {
      DataLoaderOptions d;
      d.patterns = cfg.data.train;
      d.batch_size = cfg.batch.micro_batch;
      d.seq_len = cfg.batch.seq_len;
      d.shuffle = cfg.data.shuffle;
      d.seed = cfg.seed;
      d.vocab_size = cfg.model.vocab_size;
      d.prefetch = cfg.data.prefetch;
      try {
        loader_ = std::make_unique<DataLoader>(d);
        described = loader_->describe();
      } catch (const Error& e) {
        if (mode == "config") throw;
        described = std::string("synthetic (config shards unavailable: ") + e.what() + ")";
      }
    } else {
      described = "synthetic";
    }
    if (!loader_) {
      if (described.empty()) described = "synthetic";
      // A few distinct random batches, cycled: the host does no work per step.
      std::mt19937_64 rng(cfg.seed);
      synthetic_.resize(size_t(kSyntheticBatches * n + 1));
      for (auto& t : synthetic_) t = int32_t(rng() % uint64_t(cfg.model.vocab_size));
    }
    n_ = n;
  }
  void next(int32_t* inputs, int32_t* targets) {
    if (loader_) return loader_->next(inputs, targets);
    const int32_t* base = synthetic_.data() + (k_++ % kSyntheticBatches) * n_;
    std::copy(base, base + n_, inputs);
    std::copy(base + 1, base + 1 + n_, targets);
  }

 private:
  static constexpr int64_t kSyntheticBatches = 4;
  std::unique_ptr<DataLoader> loader_;
  std::vector<int32_t> synthetic_;
  int64_t n_ = 0, k_ = 0;
};

std::string fmt_ms(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f ms", s * 1e3);
  return b;
}

}  // namespace

json BenchResult::to_json() const {
  return {{"device", device},
          {"config", config},
          {"data", data},
          {"tokens_per_step", tokens_per_step},
          {"parameters", parameters},
          {"step_s", step_s},
          {"tokens_per_s", tokens_per_s},
          {"flops_per_token", flops_per_token},
          {"peak_flops_bf16", peak_flops},
          {"mfu", mfu >= 0 ? json(mfu) : json(nullptr)},
          {"forward_s", forward_s},
          {"backward_s", backward_s},
          {"optimizer_s", optimizer_s},
          {"forward_issue_s", forward_issue_s},
          {"backward_issue_s", backward_issue_s},
          {"optimizer_issue_s", optimizer_issue_s},
          {"arena_bytes", arena_bytes},
          {"device_bytes_used", device_bytes_used},
          {"device_bytes_total", device_bytes_total},
          {"loss_first", loss_first},
          {"loss_last", loss_last}};
}

BenchResult run_bench(const RunConfig& cfg, const BenchOptions& opt) {
  if (opt.steps < 1) fail("bench: --steps must be >= 1");
  if (opt.warmup < 0 || opt.phase_steps < 0) fail("bench: --warmup and --phase-steps must be >= 0");
  const BatchConfig& b = cfg.batch;
  const int64_t accum = b.grad_accum(1);
  const int64_t micro_tokens = b.micro_batch * b.seq_len;

  std::unique_ptr<Ops> ops_owner = make_ops(cfg.device);
  Ops& ops = *ops_owner;
  const Precision prec = cfg.precision_on(ops.device());
  Arena arena(ops);
  GPT model(cfg.model, prec, b.micro_batch, b.seq_len, arena, Recompute::parse(cfg.recompute));
  OptimizerSetup setup = make_optimizer_setup(cfg.optimizer, cfg.file, model.params());
  reserve_optimizer_state(arena, setup);  // as the Trainer (the step below is its order)
  arena.allocate();
  model.bind();
  model.init_weights(ops, cfg.seed);

  BenchResult r;
  r.device = ops.name();
  r.config = cfg.file;
  BenchData data(cfg, opt.data, r.data);
  r.tokens_per_step = b.global_tokens;
  r.parameters = cfg.model.num_parameters();
  r.flops_per_token = cfg.model.flops_per_token(int(b.seq_len));
  r.peak_flops = ops.peak_flops_bf16();
  r.arena_bytes = double(arena.total_bytes());

  HostBatch host_batch(ops, micro_tokens);  // page-locked inputs/targets, as the Trainer

  if (!opt.quiet) {
    const ModelConfig& m = cfg.model;
    std::printf("bench: %s | %s\n", cfg.file.c_str(), r.device.c_str());
    std::printf("model: %s, %d layers, d_model %d, %d heads, %.2fM parameters, %s activations, "
                "recompute %s\n",
                m.preset.c_str(), m.n_layer, m.d_model, m.n_head, m.num_parameters() / 1e6,
                dtype_name(prec.activation), model.recompute().str().c_str());
    std::printf("batch: %lld tokens/step = %lld micro-steps × %lld × %lld | data: %s\n",
                (long long)b.global_tokens, (long long)accum, (long long)b.micro_batch,
                (long long)b.seq_len, r.data.c_str());
    for (ParamGroup& g : setup.groups)
      std::printf("optimizer %-9s %s (%zu tensors)\n", g.name.c_str(),
                  g.optimizer->describe().c_str(), g.params.size());
    std::printf("%s", arena.plan_report().c_str());
    std::fflush(stdout);
  }

  const double grad_scale = 1.0 / double(micro_tokens * accum);
  // Phase timers: only when `timed`, each phase is bracketed by device synchronisations.
  struct PhaseTime {
    double device = 0, issue = 0;  // seconds, summed over the timed steps
  } t_fwd, t_bwd, t_opt;
  auto phase = [&](bool timed, PhaseTime& acc, auto&& fn) {
    if (!timed) return fn();
    ops.synchronize();
    const double t0 = now_seconds();
    fn();
    acc.issue += now_seconds() - t0;
    ops.synchronize();
    acc.device += now_seconds() - t0;
  };
  // One training step on the bench's backend, or through `prof` (a ProfilingOps around it) when
  // given: then each op is booked under its phase.
  auto step = [&](int64_t s, bool timed, ProfilingOps* prof) {
    Ops& o = prof ? static_cast<Ops&>(*prof) : ops;
    auto in_phase = [&](const char* name) {
      if (prof) prof->set_phase(name);
    };
    in_phase("input");
    model.zero_grads(o);
    o.fill(model.loss_accumulator(), 0.0);
    for (int64_t micro = 0; micro < accum; micro++) {
      in_phase("input");
      host_batch.upload([&](int32_t* x, int32_t* y) { data.next(x, y); }, model.inputs(),
                        model.targets());
      in_phase("forward");
      phase(timed, t_fwd, [&] { model.forward(o, true, grad_scale); });
      in_phase("backward");
      phase(timed, t_bwd, [&] { model.backward(o); });
    }
    in_phase("loss");
    const double loss = o.sum(model.loss_accumulator()) / double(micro_tokens * accum);
    in_phase("optimizer");
    phase(timed, t_opt, [&] {
      // As Trainer::optimizer_step: global norm, clipping, one step per group, weight refresh.
      const double norm = std::sqrt(o.sum_squares(model.params().flat_grads()));
      const double clip =
          setup.grad_clip > 0 && norm > setup.grad_clip ? setup.grad_clip / norm : 1.0;
      const uint64_t copy_seed = cfg.seed + uint64_t(s) + 1;
      if (!step_optimizers(o, setup, s, 1.0, clip, false, true, copy_seed))
        model.sync_compute_weights(o, copy_seed);
    });
    if (!std::isfinite(loss)) fail("bench: the loss is ", loss, " at step ", s + 1);
    return loss;
  };

  int64_t s = 0;
  for (int64_t i = 0; i < opt.warmup; i++, s++) {
    const double loss = step(s, false, nullptr);
    if (i == 0) r.loss_first = loss;
  }
  ops.synchronize();
  const double t0 = now_seconds();
  for (int64_t i = 0; i < opt.steps; i++, s++) {
    r.loss_last = step(s, false, nullptr);
    if (opt.warmup == 0 && i == 0) r.loss_first = r.loss_last;
  }
  ops.synchronize();
  r.step_s = (now_seconds() - t0) / double(opt.steps);
  r.tokens_per_s = double(b.global_tokens) / r.step_s;
  if (r.peak_flops > 0) r.mfu = r.flops_per_token * r.tokens_per_s / r.peak_flops;

  if (opt.phase_steps > 0) {
    for (int64_t i = 0; i < opt.phase_steps; i++, s++) step(s, true, nullptr);
    const double n = double(opt.phase_steps);
    r.forward_s = t_fwd.device / n;
    r.backward_s = t_bwd.device / n;
    r.optimizer_s = t_opt.device / n;
    r.forward_issue_s = t_fwd.issue / n;
    r.backward_issue_s = t_bwd.issue / n;
    r.optimizer_issue_s = t_opt.issue / n;
  }
  std::string profile;
  if (opt.profile_steps > 0) {
    ProfilingOps prof(ops);
    for (int64_t i = 0; i < opt.profile_steps; i++, s++) step(s, false, &prof);
    profile = prof.report(opt.profile_steps, 1e3 * r.step_s);
  }
  ops.synchronize();
  r.device_bytes_used = double(ops.device_memory_used());
  r.device_bytes_total = double(ops.device_memory_total());

  if (!opt.quiet) {
    std::printf("throughput: %s tokens/s, %s per step (%lld steps after %lld warmup)\n",
                format_count(r.tokens_per_s).c_str(), fmt_ms(r.step_s).c_str(),
                (long long)opt.steps, (long long)opt.warmup);
    if (r.mfu >= 0)
      std::printf("MFU: %.1f%% (%.3g GFLOP/token × tokens/s vs %.0f TFLOP/s dense bf16 peak)\n",
                  100 * r.mfu, r.flops_per_token / 1e9, r.peak_flops / 1e12);
    else
      std::printf("MFU: n/a (no known bf16 peak for this device; %.3g GFLOP/token = %.3g "
                  "GFLOP/s achieved)\n",
                  r.flops_per_token / 1e9, r.flops_per_token * r.tokens_per_s / 1e9);
    if (opt.phase_steps > 0) {
      std::printf("phases (synchronised, %lld steps): forward %s, backward %s, optimizer %s "
                  "per step\n",
                  (long long)opt.phase_steps, fmt_ms(r.forward_s).c_str(),
                  fmt_ms(r.backward_s).c_str(), fmt_ms(r.optimizer_s).c_str());
      if (ops.device() != Device::cpu)  // (the CPU runs each op as it is issued)
        std::printf("  host time to issue them: forward %s, backward %s, optimizer %s (a phase "
                    "whose issue time is close to its time is bound by the host's launches)\n",
                    fmt_ms(r.forward_issue_s).c_str(), fmt_ms(r.backward_issue_s).c_str(),
                    fmt_ms(r.optimizer_issue_s).c_str());
    }
    if (r.device_bytes_total > 0)
      std::printf("memory: arena %s, device in use %s of %s (arena + workspaces + context)\n",
                  format_bytes(r.arena_bytes).c_str(), format_bytes(r.device_bytes_used).c_str(),
                  format_bytes(r.device_bytes_total).c_str());
    else
      std::printf("memory: arena %s (host)\n", format_bytes(r.arena_bytes).c_str());
    std::printf("loss: %.4f (first step) -> %.4f (last timed step)\n", r.loss_first, r.loss_last);
  }
  if (!profile.empty())  // even when quiet: it was asked for
    std::printf("per-op profile (%lld steps, every op between two device synchronisations):\n%s",
                (long long)opt.profile_steps, profile.c_str());
  // One parseable line (scripts/gpu-check.sh reads it).
  char mfu[32];
  if (r.mfu >= 0) std::snprintf(mfu, sizeof mfu, "%.4f", r.mfu);
  else std::snprintf(mfu, sizeof mfu, "n/a");
  std::printf("BENCH mousse tokens_per_s=%.0f mfu=%s step_ms=%.2f forward_ms=%.2f "
              "backward_ms=%.2f optimizer_ms=%.2f mem_gib=%.2f arena_gib=%.2f\n",
              r.tokens_per_s, mfu, r.step_s * 1e3, r.forward_s * 1e3, r.backward_s * 1e3,
              r.optimizer_s * 1e3, r.device_bytes_used / double(1ull << 30),
              r.arena_bytes / double(1ull << 30));
  std::fflush(stdout);
  if (!opt.json_path.empty()) {
    std::ofstream out(opt.json_path);
    if (!out) fail("bench: cannot write ", opt.json_path);
    out << r.to_json().dump(2) << "\n";
  }
  return r;
}

}  // namespace mousse
