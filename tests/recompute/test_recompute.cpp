// Activation recomputation (model/gpt.h Recompute) changes memory, never results: on the CPU the
// loss and every gradient are bit-identical with recompute none / mlp / norms / all, in f32 and
// f64, and the arena's activation plan shrinks by the buffers that are shared.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "backend/ops.h"
#include "model/gpt.h"

using namespace mousse;

namespace {

ModelConfig small_model() {
  ModelConfig m;
  m.n_layer = 3;
  m.n_head = 4;
  m.d_model = 32;
  m.vocab_size = 91;
  m.padded_vocab = 128;
  m.max_seq_len = 16;
  m.rope_base = 100.0;
  return m;
}

struct Result {
  std::vector<char> loss, grads;
  size_t activation_bytes = 0;
};

Result run(DType dt, const std::string& mode) {
  const ModelConfig cfg = small_model();
  const int64_t B = 2, T = 13;
  auto ops = make_cpu_ops();
  Arena arena(*ops);
  GPT model(cfg, Precision{dt, dt}, B, T, arena, Recompute::parse(mode));
  arena.allocate();
  model.bind();
  model.init_weights(*ops, 42);
  std::mt19937_64 rng(9);
  std::vector<int32_t> tokens(size_t(B * T)), targets(tokens.size());
  for (auto& t : tokens) t = int32_t(rng() % 91);
  for (auto& t : targets) t = int32_t(rng() % 91);
  ops->from_host(model.inputs(), tokens.data());
  ops->from_host(model.targets(), targets.data());
  Result r;
  // Two micro-batches of accumulation, so shared buffers are reused across passes.
  model.zero_grads(*ops);
  ops->fill(model.loss_accumulator(), 0.0);
  for (int micro = 0; micro < 2; micro++) {
    model.forward(*ops, true, 1.0 / double(2 * B * T));
    model.backward(*ops);
  }
  const Tensor& l = model.loss_accumulator();
  r.loss.resize(l.bytes());
  ops->to_host(r.loss.data(), l);
  const Tensor& g = model.params().flat_grads();
  r.grads.resize(g.bytes());
  ops->to_host(r.grads.data(), g);
  r.activation_bytes = arena.category_bytes("activations");
  return r;
}

}  // namespace

TEST_CASE("activation recomputation is bit-identical on the CPU and saves activation memory") {
  for (DType dt : {DType::f32, DType::f64}) {
    const Result base = run(dt, "none");
    for (const char* mode : {"mlp", "norms", "all"}) {
      INFO(dtype_name(dt) << " recompute " << mode);
      const Result r = run(dt, mode);
      CHECK(r.loss == base.loss);
      CHECK(r.grads == base.grads);
      CHECK(r.activation_bytes < base.activation_bytes);
    }
  }
  // What "all" saves: per layer ln1, ln2 [N, C] and fc_act [N, 4C], minus the shared buffers.
  const ModelConfig cfg = small_model();
  const size_t N = 2 * 13, C = size_t(cfg.d_model), L = size_t(cfg.n_layer);
  const size_t saved = 4 * (L * (2 * N * C + N * 4 * C) - (N * C + N * 4 * C)) - 4 * N;
  const size_t none = run(DType::f32, "none").activation_bytes;
  const size_t all = run(DType::f32, "all").activation_bytes;
  INFO("activations none " << none << " all " << all);
  // Arena entries may be padded for alignment: allow a little slack.
  CHECK(none - all >= saved - 4096);
  CHECK(none - all <= saved + 4096);
}

TEST_CASE("recompute modes parse and name themselves") {
  CHECK(Recompute::parse("none").str() == "none");
  CHECK(Recompute::parse("mlp").str() == "mlp");
  CHECK(Recompute::parse("norms").str() == "norms");
  CHECK(Recompute::parse("all").str() == "all");
  CHECK_THROWS_WITH(Recompute::parse("attention"), Catch::Contains("none, mlp, norms or all"));
}
