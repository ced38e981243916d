// ProfilingOps (mousse bench --profile): a training step through it computes exactly what the
// plain backend computes (every op is forwarded unchanged), and it books every op of the step
// under its phase, GEMMs by shape with their flops.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "backend/profiling_ops.h"
#include "backend/select.h"
#include "core/arena.h"
#include "model/gpt.h"
#include "optim/matrix_common.h"
#include "train/param_groups.h"
#include "train/trainer.h"

using namespace mousse;

namespace {
struct Run {
  std::unique_ptr<Ops> ops = make_ops("cpu");
  Arena arena{*ops};
  GPT model;
  OptimizerSetup setup;
  Run(const ModelConfig& cfg, const json& opt)
      : model(cfg, Precision{}, 2, 16, arena) {
    setup = make_optimizer_setup(opt, "test", model.params());
    reserve_optimizer_state(arena, setup);
    arena.allocate();
    model.bind();
    model.init_weights(*ops, 5);
  }
  // forward, backward and one optimizer step on this run's backend, or through `prof` (a
  // ProfilingOps around it) when given
  double step(ProfilingOps* prof, const std::vector<int32_t>& x, const std::vector<int32_t>& y) {
    Ops& o = prof ? static_cast<Ops&>(*prof) : *ops;
    if (prof) prof->set_phase("forward");
    model.zero_grads(o);
    o.fill(model.loss_accumulator(), 0.0);
    o.from_host(model.inputs(), x.data());
    o.from_host(model.targets(), y.data());
    model.forward(o, true, 1.0 / double(x.size()));
    if (prof) prof->set_phase("backward");
    model.backward(o);
    if (prof) prof->set_phase("optimizer");
    const double loss = o.sum(model.loss_accumulator());
    step_optimizers(o, setup, 0, 1.0, 1.0, false, true, 1);
    return loss;
  }
};
}  // namespace

TEST_CASE("profiling ops: the same step, bit for bit, and every op booked under its phase") {
  ModelConfig cfg;
  cfg.n_layer = 2;
  cfg.n_head = 2;
  cfg.d_model = 32;
  cfg.vocab_size = 61;
  cfg.padded_vocab = 64;
  cfg.max_seq_len = 16;
  const json opt = {{"matrix", {{"type", "mousse"}, {"lr", 0.02}}},
                    {"embedding", {{"type", "adamw"}, {"lr", 1e-3}}}};
  std::mt19937_64 rng(3);
  std::vector<int32_t> x(32), y(32);
  for (auto& t : x) t = int32_t(rng() % 61);
  for (auto& t : y) t = int32_t(rng() % 61);

  Run plain(cfg, opt), profiled(cfg, opt);
  ProfilingOps prof(*profiled.ops);
  const double a = plain.step(nullptr, x, y);
  const double b = profiled.step(&prof, x, y);
  CHECK(a == b);
  CHECK(read_vector(*plain.ops, plain.model.params().flat_weights()) ==
        read_vector(*profiled.ops, profiled.model.params().flat_weights()));

  const std::string r = prof.report(1, 0.0);
  INFO(r);
  // the forward GEMMs by shape: qkv x Wᵀ per layer ([32, 96] = [32, 32] · [32, 96]) and lm_head
  CHECK(r.find("matmul 32x96x32 f32") != std::string::npos);
  CHECK(r.find("matmul 32x64x32 f32") != std::string::npos);
  CHECK(r.find("GFLOP/s") != std::string::npos);
  for (const char* op : {"classifier", "attention_forward", "attention_backward", "rmsnorm_backward",
                         "embedding_backward", "eigh_batched", "adamw_update"})
    CHECK(r.find(op) != std::string::npos);
  CHECK(r.find("forward    (all ops)") != std::string::npos);
  CHECK(r.find("backward   (all ops)") != std::string::npos);
  CHECK(r.find("optimizer  (all ops)") != std::string::npos);
  prof.reset();
  CHECK(prof.report(1, 0.0).find("classifier") == std::string::npos);
}
