// The memory planner (mousse config --memory): data-parallel ranks partition the optimizer state
// and share everything else's size; and the memory target of docs/cuda.md in plan terms (single-sided
// Mousse within 1.05× Muon's memory for 162m at the paper's per-GPU micro-batch on CUDA).
#include <catch2/catch.hpp>

#include <string>

#include "train/memory_plan.h"
#include "train/run_config.h"

using namespace mousse;

namespace {
RunConfig config(const std::string& model, int64_t micro_batch, int64_t global_tokens,
                 const json& matrix) {
  json j = {{"model", {{"preset", model}}},
            {"data", {{"train", "unused_*.bin"}}},
            {"batch", {{"global_tokens", global_tokens}, {"micro_batch", micro_batch}, {"seq_len", 1024}}},
            {"optimizer", {{"matrix", matrix}, {"embedding", {{"type", "lion"}, {"lr", 1e-4}}}}},
            {"steps", 10}};
  return parse_run_config(j, "plan.json");
}
}  // namespace

TEST_CASE("memory plan: W ranks split the optimizer state and agree on everything else") {
  for (const char* type : {"adamw", "muon", "mousse", "soap"}) {
    INFO(type);
    const RunConfig cfg = config("162m", 2, 2 * 1024 * 6, {{"type", type}, {"lr", 1e-3}});
    const std::vector<RankMemory> one = plan_run_memory(cfg, Device::cuda, 1);
    const std::vector<RankMemory> three = plan_run_memory(cfg, Device::cuda, 3);
    REQUIRE(one.size() == 1);
    REQUIRE(three.size() == 3);
    size_t optimizer_sum = 0;
    for (const RankMemory& r : three) {
      optimizer_sum += r.optimizer_bytes;
      // the same parameters, gradients and activations on every rank
      CHECK(r.arena_bytes - r.optimizer_bytes <= one[0].arena_bytes - one[0].optimizer_bytes);
      CHECK(r.optimizer_bytes < one[0].optimizer_bytes);
    }
    // partitioned: the ranks' states add up to the whole, up to each tensor's 256-byte alignment
    // (ZeRO-1 cuts every elementwise state tensor in three)
    CHECK(optimizer_sum >= one[0].optimizer_bytes);
    CHECK(optimizer_sum <= one[0].optimizer_bytes + 3 * 2000 * 256);
  }
}

TEST_CASE("memory plan: single-sided Mousse within 1.05x Muon's memory (162m, B 32, CUDA)") {
  const json muon = {{"type", "muon"}, {"lr", 0.02}};
  const double base = double(plan_run_memory(config("162m", 32, 32 * 1024, muon), Device::cuda, 1)[0].arena_bytes);
  for (const char* side : {"output", "input", "smaller"}) {
    const json mousse = {{"type", "mousse"}, {"lr", 0.02}, {"whiten", side}};
    const double m = double(plan_run_memory(config("162m", 32, 32 * 1024, mousse), Device::cuda, 1)[0].arena_bytes);
    INFO("whiten " << side << ": " << m / double(1 << 30) << " GiB vs Muon " << base / double(1 << 30)
                   << " GiB = " << m / base << "x");
    CHECK(m > base);
    CHECK(m <= 1.05 * base);
  }
  // both sides is not single-sided: more than the target, as expected
  const json both = {{"type", "mousse"}, {"lr", 0.02}, {"whiten", "both"}};
  CHECK(double(plan_run_memory(config("162m", 32, 32 * 1024, both), Device::cuda, 1)[0].arena_bytes) >
        1.05 * base);
}
