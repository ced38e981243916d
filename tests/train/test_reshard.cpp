// Resharding a checkpoint's optimizer state (train/reshard.h): which stored elements fill which
// part of a rank's state, for any number of saving and resuming ranks. The runs themselves (W
// ranks checkpoint, W' ranks resume, == the uninterrupted W'-rank run) are tests/dist's
// `reshard` cases under mpirun.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/select.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "model/gpt.h"
#include "train/param_groups.h"
#include "train/reshard.h"
#include "train/run_config.h"
#include "train/trainer.h"

using namespace mousse;

namespace {

// Fills [offset, offset + count) of a part from `stored` (per file: its piece's elements), as
// load_optimizer_state does from the files.
std::vector<double> assemble(const std::vector<StateIndex::Read>& reads,
                             const std::vector<std::vector<double>>& stored, int64_t count) {
  std::vector<double> out(size_t(count), -1.0);
  for (const StateIndex::Read& r : reads) {
    REQUIRE(r.first >= 0);
    REQUIRE(r.first + r.count <= int64_t(stored[size_t(r.file)].size()));
    std::copy_n(stored[size_t(r.file)].begin() + r.first, r.count, out.begin() + r.dst);
  }
  return out;
}

}  // namespace

TEST_CASE("reshard: a state tensor's parameter is its name after <optimizer>.<state>.") {
  CHECK(state_parameter("adamw.m.wte") == "wte");
  CHECK(state_parameter("mousse.QL.blocks.0.attn.q") == "blocks.0.attn.q");
  CHECK(state_parameter("mousse.pending_lambdaR.blocks.11.mlp.fc") == "blocks.11.mlp.fc");
  CHECK(state_parameter("soap.exp_avg_sq.lm_head") == "lm_head");
  CHECK(state_parameter("noname").empty());
  CHECK(state_parameter("a.b").empty());
  CHECK(state_parameter("a.b.").empty());
}

TEST_CASE("reshard: slices saved by W ranks re-cut for W' ranks, any sizes") {
  std::mt19937_64 rng(2024);
  std::uniform_int_distribution<int64_t> size(1, 4000);
  std::uniform_int_distribution<int> ranks(1, 6);
  std::normal_distribution<double> nd;
  for (int trial = 0; trial < 200; trial++) {
    const int64_t total = trial < 6 ? trial + 1 : size(rng);  // tiny totals: ranks with nothing
    const int W = ranks(rng), W2 = ranks(rng);
    const bool legacy = trial % 3 == 0;  // shards without a layout: the even split is inferred
    INFO("total " << total << ", " << W << " -> " << W2 << " ranks" << (legacy ? " (legacy)" : ""));
    std::vector<double> whole(static_cast<size_t>(total));
    for (double& x : whole) x = nd(rng);
    // as saved: rank r's even slice in file r (a rank with an empty slice has no tensor)
    StateIndex index;
    std::vector<std::vector<double>> stored;
    const std::vector<int64_t> c = even_split(total, W);
    std::vector<int> order(static_cast<size_t>(W));
    for (int r = 0; r < W; r++) order[size_t(r)] = r;
    std::shuffle(order.begin(), order.end(), rng);  // the index does not rely on file order
    int64_t start = 0;
    std::vector<int64_t> starts;
    for (int r = 0; r < W; r++) starts.push_back(start), start += c[size_t(r)];
    stored.resize(size_t(W));
    for (int r : order) {
      const int64_t s = starts[size_t(r)], n = c[size_t(r)];
      stored[size_t(r)].assign(whole.begin() + s, whole.begin() + s + n);
      if (n == 0) continue;
      if (legacy) index.add_unplaced("adamw.m.wte", r, r, W, n);
      else index.add("adamw.m.wte", r, s, n, total);
    }
    CHECK(index.elements() == total);
    // each new rank's slice, and the whole tensor (a single process)
    const std::vector<int64_t> c2 = even_split(total, W2);
    int64_t s2 = 0;
    for (int r = 0; r <= W2; r++) {
      const int64_t offset = r < W2 ? s2 : 0, count = r < W2 ? c2[size_t(r)] : total;
      if (r < W2) s2 += count;
      const auto reads = index.reads("adamw.m.wte", offset, count, total, "ckpt");
      const std::vector<double> got = assemble(reads, stored, count);
      CHECK(std::equal(got.begin(), got.end(), whole.begin() + offset));
      int64_t read = 0;
      for (auto& x : reads) read += x.count;
      CHECK(read == count);  // every element read once, none beyond the part
    }
  }
}

TEST_CASE("reshard: a checkpoint that cannot fill a part is refused, naming the state") {
  StateIndex index;
  index.add("lion.m.wte", 0, 0, 60, 100);
  index.add("lion.m.wte", 1, 60, 40, 100);
  index.add("muon.m.blocks.0.attn.q", 1, 0, 16, 16);
  CHECK(index.tensors() == 2);
  CHECK(index.elements() == 116);
  CHECK_THROWS_WITH(index.reads("mousse.m.blocks.0.attn.q", 0, 16, 16, "ck.safetensors"),
                    Catch::Contains("ck.safetensors") &&
                        Catch::Contains("no optimizer state 'mousse.m.blocks.0.attn.q'"));
  // another model: the saved tensor has another size
  CHECK_THROWS_WITH(index.reads("muon.m.blocks.0.attn.q", 0, 25, 25, "ck"),
                    Catch::Contains("has 16 elements, this run's has 25"));
  // a gap (the slice of a lost rank) and elements saved twice (files of two checkpoints)
  StateIndex gap;
  gap.add("adamw.v.wte", 0, 0, 30, 100);
  gap.add("adamw.v.wte", 2, 70, 30, 100);
  CHECK_NOTHROW(gap.reads("adamw.v.wte", 0, 30, 100, "ck"));
  CHECK_THROWS_WITH(gap.reads("adamw.v.wte", 20, 60, 100, "ck"),
                    Catch::Contains("elements missing at [30, 70)"));
  CHECK_THROWS_WITH(gap.reads("adamw.v.wte", 0, 100, 100, "ck"),
                    Catch::Contains("elements missing at [30, 70)"));
  StateIndex twice;
  twice.add("adamw.v.wte", 0, 0, 60, 100);
  twice.add("adamw.v.wte", 1, 50, 50, 100);
  CHECK_THROWS_WITH(twice.reads("adamw.v.wte", 0, 100, 100, "ck"),
                    Catch::Contains("stored twice"));
  // a shard without a layout whose slice is not the even split of this run's tensor
  StateIndex legacy;
  legacy.add_unplaced("adamw.m.wte", 1, 1, 2, 49);
  CHECK_THROWS_WITH(legacy.reads("adamw.m.wte", 50, 50, 100, "ck"),
                    Catch::Contains("holds 49 elements, its slice of 100 has 50"));
}

// A StatePart with its element count (its tensor belongs to an optimizer that is gone).
struct Part {
  std::string name;
  int64_t offset, count, total;
};

// The parts every rank of a W-rank run holds, as the Trainer plans them (plan-only arenas).
std::vector<std::vector<Part>> plan_parts(const json& matrix, int world) {
  json j = {{"model", {{"preset", "custom"}, {"n_layer", 2}, {"n_head", 2}, {"d_model", 32},
                       {"vocab_size", 50257}, {"max_seq_len", 64}}},
            {"data", {{"train", "unused_*.bin"}}},
            {"batch", {{"global_tokens", 64 * 6}, {"micro_batch", 2}, {"seq_len", 32}}},
            {"optimizer", {{"matrix", matrix}, {"embedding", {{"type", "lion"}, {"lr", 1e-4}}},
                           {"lm_head", {{"type", "adamw"}, {"lr", 1e-4}}}}},
            {"steps", 10}};
  const RunConfig cfg = parse_run_config(j, "plan.json");
  std::unique_ptr<Ops> host_ops = make_ops("cpu");
  std::vector<std::vector<Part>> out;
  for (int r = 0; r < world; r++) {
    Arena arena(Device::cpu);
    GPT model(cfg.model, Precision{}, 2, 32, arena, Recompute::parse(cfg.recompute));
    OptimizerSetup setup = make_optimizer_setup(cfg.optimizer, cfg.file, model.params());
    std::unique_ptr<Communicator> comm = make_rank_stand_in(r, world);
    std::unique_ptr<DataParallel> dp;
    if (world > 1) dp = std::make_unique<DataParallel>(*comm, *host_ops, model.params(), setup);
    reserve_optimizer_state(arena, setup);
    const std::vector<StatePart> parts = local_state_parts(arena, dp.get());
    const json layout = state_layout(parts);
    out.emplace_back();
    for (const StatePart& p : parts) {
      INFO(p.name);
      CHECK(model.params().find(state_parameter(p.name)) != nullptr);  // the naming contract
      CHECK(layout[p.name] == json::array({p.offset, p.total}));
      out.back().push_back({p.name, p.offset, p.tensor->numel(), p.total});
    }
  }
  return out;
}

TEST_CASE("reshard: every optimizer's state saved by W ranks fills the parts of W' ranks") {
  const json configs[] = {
      {{"type", "adamw"}, {"lr", 1e-3}},
      {{"type", "muon"}, {"lr", 0.02}},
      {{"type", "soap"}, {"lr", 1e-3}},
      {{"type", "mousse"}, {"lr", 0.02}, {"update_interval", 2}, {"refresh_overlap", 1}},
  };
  for (const json& matrix : configs) {
    INFO(matrix.dump());
    // the single process's tensors: every name whole
    std::map<std::string, int64_t> totals;
    const auto single = plan_parts(matrix, 1);
    for (const Part& p : single[0]) {
      CHECK(p.offset == 0);
      CHECK(p.total == p.count);
      totals[p.name] = p.total;
    }
    REQUIRE(totals.count("lion.m.wte"));
    REQUIRE(totals.count("adamw.v.lm_head"));
    for (int W : {1, 2, 3, 5}) {
      // saved: each rank's parts, with the layout its shard records
      StateIndex index;
      const auto saved = plan_parts(matrix, W);
      for (int r = 0; r < W; r++)
        for (const Part& p : saved[size_t(r)]) {
          CHECK(totals.at(p.name) == p.total);
          index.add(p.name, r, p.offset, p.count, p.total);
        }
      int64_t all = 0;
      for (auto& [name, n] : totals) all += n;
      CHECK(index.elements() == all);  // the ranks' parts partition the run's state
      for (int W2 : {1, 2, 3, 4}) {
        INFO(W << " -> " << W2 << " ranks");
        int64_t loaded = 0;
        for (const auto& rank_parts : plan_parts(matrix, W2))
          for (const Part& p : rank_parts) {
            const auto reads = index.reads(p.name, p.offset, p.count, p.total, "ck");
            for (auto& x : reads) loaded += x.count;
          }
        CHECK(loaded == all);
      }
    }
  }
}
