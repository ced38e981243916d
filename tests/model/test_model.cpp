// The whole GPT (forward + backward through every layer) against an independent PyTorch
// implementation and against finite differences, in double precision on the CPU backend.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "backend/ops.h"
#include "core/safetensors.h"
#include "model/gpt.h"

using namespace mousse;

namespace {

ModelConfig small_model() {
  ModelConfig m;
  m.preset = "custom";
  m.n_layer = 2;
  m.n_head = 4;
  m.d_model = 32;
  m.vocab_size = 91;  // padded rows 91..127 exercise the padding rules
  m.padded_vocab = 128;
  m.max_seq_len = 16;
  m.rope_base = 100.0;  // large angles at short T: RoPE's effect is visible
  return m;
}

struct Fixture {
  std::unique_ptr<Ops> ops = make_cpu_ops();
  Arena arena{*ops};
  GPT model;
  std::vector<int32_t> tokens, targets;
  Fixture(const ModelConfig& cfg, DType dt, int64_t B, int64_t T, uint64_t seed)
      : model(cfg, Precision{dt, dt}, B, T, arena) {
    arena.allocate();
    model.bind();
    model.init_weights(*ops, seed);
    std::mt19937_64 rng(seed + 17);
    tokens.resize(size_t(B * T));
    targets.resize(size_t(B * T));
    for (auto& t : tokens) t = int32_t(rng() % uint64_t(cfg.vocab_size));
    for (auto& t : targets) t = int32_t(rng() % uint64_t(cfg.vocab_size));
    ops->from_host(model.inputs(), tokens.data());
    ops->from_host(model.targets(), targets.data());
  }
  double loss(bool grad) {
    const double n = double(tokens.size());
    ops->fill(model.loss_accumulator(), 0.0);
    model.forward(*ops, grad, 1.0 / n);
    return ops->sum(model.loss_accumulator()) / n;
  }
};

template <class T>
std::vector<T> to_vec(Ops& ops, const Tensor& t) {
  std::vector<T> v(size_t(t.numel()));
  ops.to_host(v.data(), t);
  return v;
}

}  // namespace

TEST_CASE("GPT loss and gradients match the PyTorch reference in float64") {
  ModelConfig cfg = small_model();
  const int64_t B = 2, T = 13;
  Fixture f(cfg, DType::f64, B, T, 20251122);
  f.model.zero_grads(*f.ops);
  const double loss = f.loss(true);
  f.model.backward(*f.ops);

  SafeTensorsWriter w;
  for (const Param& p : f.model.params().params()) {
    w.add(p.name, DType::f64, p.weight.shape, [&, t = p.weight](void* d) { f.ops->to_host(d, t); });
    w.add("grad/" + p.name, DType::f64, p.grad.shape, [&, t = p.grad](void* d) { f.ops->to_host(d, t); });
  }
  w.add("tokens", DType::i32, Shape{B, T}, [&](void* d) { std::memcpy(d, f.tokens.data(), f.tokens.size() * 4); });
  w.add("targets", DType::i32, Shape{B, T}, [&](void* d) { std::memcpy(d, f.targets.data(), f.targets.size() * 4); });
  json m = {{"n_layer", cfg.n_layer}, {"n_head", cfg.n_head}, {"d_model", cfg.d_model},
            {"vocab_size", cfg.vocab_size}, {"rope_base", cfg.rope_base}};
  w.set_metadata("model", m.dump());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", loss);
  w.set_metadata("loss", buf);
  const std::string dump = "test_model_dump.safetensors";
  w.write_atomic(dump);

  std::string cmd = std::string(MOUSSE_PYTHON) + " " + MOUSSE_TEST_DIR + "/gpt_reference.py " + dump;
  int rc = std::system(cmd.c_str());
  REQUIRE(rc == 0);
}

TEST_CASE("GPT gradients match central finite differences in float64") {
  ModelConfig cfg = small_model();
  Fixture f(cfg, DType::f64, 2, 9, 7);
  f.model.zero_grads(*f.ops);
  f.loss(true);
  f.model.backward(*f.ops);
  std::mt19937_64 rng(99);
  for (Param& p : f.model.params().params()) {
    auto grad = to_vec<double>(*f.ops, p.grad);
    auto weight = to_vec<double>(*f.ops, p.weight);
    // Probe entries where the gradient is not zero (wte rows of unused tokens are zero).
    for (int probe = 0; probe < 3; probe++) {
      size_t i = 0;
      for (int tries = 0; tries < 1000; tries++) {
        i = size_t(rng() % uint64_t(weight.size()));
        if (grad[i] != 0) break;
      }
      const double h = 1e-5, w0 = weight[i];
      auto loss_at = [&](double v) {
        weight[i] = v;
        f.ops->from_host(p.weight, weight.data());
        return f.loss(false);
      };
      const double fd = (loss_at(w0 + h) - loss_at(w0 - h)) / (2 * h);
      loss_at(w0);
      INFO(p.name << "[" << i << "] analytic " << grad[i] << " numeric " << fd);
      CHECK(std::fabs(fd - grad[i]) <= 1e-6 * std::max(1e-3, std::fabs(grad[i])) + 1e-9);
    }
  }
}

TEST_CASE("GPT in float32 agrees with float64") {
  ModelConfig cfg = small_model();
  Fixture f64(cfg, DType::f64, 2, 11, 3), f32(cfg, DType::f32, 2, 11, 3);
  const double l64 = f64.loss(false), l32 = f32.loss(false);
  CHECK(std::fabs(l64 - l32) < 1e-5 * std::fabs(l64));
  CHECK(std::isfinite(l64));
  // ln(V) is the loss of a uniform prediction; init is near it but never exactly it.
  CHECK(std::fabs(l64 - std::log(double(cfg.vocab_size))) < 2.0);
}

TEST_CASE("two accumulated micro-batches give the gradient of their union") {
  ModelConfig cfg = small_model();
  // One batch of 2 sequences vs two micro-batches of 1 sequence each, same tokens.
  Fixture big(cfg, DType::f64, 2, 8, 5), small(cfg, DType::f64, 1, 8, 5);
  big.model.zero_grads(*big.ops);
  big.loss(true);
  big.model.backward(*big.ops);
  small.model.zero_grads(*small.ops);
  for (int half = 0; half < 2; half++) {
    std::vector<int32_t> tok(big.tokens.begin() + half * 8, big.tokens.begin() + half * 8 + 8);
    std::vector<int32_t> tgt(big.targets.begin() + half * 8, big.targets.begin() + half * 8 + 8);
    small.ops->from_host(small.model.inputs(), tok.data());
    small.ops->from_host(small.model.targets(), tgt.data());
    small.model.forward(*small.ops, true, 1.0 / 16.0);
    small.model.backward(*small.ops);
  }
  auto g1 = to_vec<double>(*big.ops, big.model.params().flat_grads());
  auto g2 = to_vec<double>(*small.ops, small.model.params().flat_grads());
  double max_err = 0, max_g = 0;
  for (size_t i = 0; i < g1.size(); i++) {
    max_err = std::max(max_err, std::fabs(g1[i] - g2[i]));
    max_g = std::max(max_g, std::fabs(g1[i]));
  }
  CHECK(max_g > 0);
  CHECK(max_err <= 1e-12 * max_g);
}
