// Ownership of whole matrices for Muon/SOAP/Mousse under data parallelism: every matrix
// has exactly one owner, the assignment is deterministic and balanced by cost.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>

#include "backend/select.h"
#include "core/arena.h"
#include "dist/data_parallel.h"
#include "model/params.h"
#include "optim/optimizer.h"
#include "train/param_groups.h"

using namespace mousse;

namespace {
std::vector<double> loads(const std::vector<double>& cost, const std::vector<int>& owner, int W) {
  std::vector<double> l(size_t(W), 0.0);
  for (size_t i = 0; i < cost.size(); i++) l[size_t(owner[i])] += cost[i];
  return l;
}

// The matrices of a GPT preset, costed for one optimizer type.
std::vector<double> model_costs(const std::string& type, int d_model, int n_layer) {
  json j = {{"type", type}};
  ConfigNode node(j, "optimizer.matrix", "test");
  auto opt = make_optimizer(node, "matrix");
  std::vector<double> cost;
  const int64_t C = d_model;
  for (int l = 0; l < n_layer; l++) {
    for (int k = 0; k < 4; k++) cost.push_back(matrix_update_cost(*opt, C, C));
    cost.push_back(matrix_update_cost(*opt, 4 * C, C));
    cost.push_back(matrix_update_cost(*opt, C, 4 * C));
  }
  return cost;
}
}  // namespace

TEST_CASE("ownership covers every matrix exactly once and is balanced", "[dist]") {
  for (std::string type : {"muon", "soap", "mousse"}) {
    for (int W : {1, 2, 3, 4, 5, 8, 16, 64, 100}) {
      std::vector<double> cost = model_costs(type, 768, 12);  // 162m: 72 matrices
      std::vector<int> owner = assign_owners(cost, W);
      REQUIRE(owner.size() == cost.size());  // one owner per matrix: covered exactly once
      for (int o : owner) REQUIRE((o >= 0 && o < W));
      std::vector<double> l = loads(cost, owner, W);
      const double total = std::accumulate(cost.begin(), cost.end(), 0.0);
      REQUIRE(std::accumulate(l.begin(), l.end(), 0.0) == Approx(total));
      const double peak = *std::max_element(l.begin(), l.end());
      const double biggest = *std::max_element(cost.begin(), cost.end());
      // Greedy largest-first (LPT): max load <= mean + the largest single cost, and never
      // worse than 4/3 of the best possible (>= max(mean, biggest)).
      const double lower = std::max(total / W, biggest);
      INFO(type << " W=" << W << " peak/lower=" << peak / lower);
      REQUIRE(peak <= total / W + biggest + 1e-9 * total);
      REQUIRE(peak <= 4.0 / 3.0 * lower * (1 + 1e-12));
      if (W <= 8) REQUIRE(peak <= 1.05 * lower);  // 72 matrices over few ranks: within 5%
      // Nobody idles while there is work: with W <= #matrices every rank owns something.
      if (W <= int(cost.size()))
        for (double x : l) REQUIRE(x > 0);
      REQUIRE(assign_owners(cost, W) == owner);  // deterministic
    }
  }
}

TEST_CASE("assign_owners: exact cases", "[dist]") {
  REQUIRE(assign_owners({}, 3).empty());
  REQUIRE(assign_owners({5, 5, 5}, 1) == std::vector<int>{0, 0, 0});
  // largest first: 7 -> r0, 5 -> r1, 4 -> r1 (5 < 7), 3 -> r0 (7 < 9) => loads 10 and 9
  REQUIRE(assign_owners({3, 7, 4, 5}, 2) == std::vector<int>{0, 0, 1, 1});
  // ties go to the lower index and the lower rank
  REQUIRE(assign_owners({1, 1, 1, 1}, 4) == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("costs: larger matrices and preconditioned optimizers cost more", "[dist]") {
  for (std::string type : {"muon", "soap", "mousse"}) {
    auto c = model_costs(type, 64, 1);
    REQUIRE(c[4] > c[0]);  // fc (4C×C) > q (C×C)
  }
  auto muon = model_costs("muon", 64, 1), mousse = model_costs("mousse", 64, 1);
  REQUIRE(mousse[0] > muon[0]);  // NS5 + whitening + eigh > NS5
}

TEST_CASE("even_split", "[dist]") {
  REQUIRE(even_split(10, 3) == std::vector<int64_t>{4, 3, 3});
  REQUIRE(even_split(2, 4) == std::vector<int64_t>{1, 1, 0, 0});
  REQUIRE(even_split(0, 2) == std::vector<int64_t>{0, 0});
}

// ---------------------------------------------------------------------------------------------
// The DataParallel plan itself (what each rank's optimizer groups hold after the constructor),
// for every optimizer, checked by building it for every rank of W with a stand-in communicator
// that only answers rank() and world_size(): no MPI needed.
namespace {
ModelConfig small_model() {
  ModelConfig m;
  m.n_layer = 3;  // 18 matrices
  m.n_head = 2;
  m.d_model = 32;  // 32×32 = 1024 and 4·32×32 = 4096 elements: uneven splits over 3 and 5 ranks
  m.vocab_size = 101;
  m.padded_vocab = 103;  // 103·32 elements: uneven over 3, 5 and 20 ranks
  m.max_seq_len = 16;
  return m;
}

json optimizer_config(const std::string& matrix_type) {
  const std::string emb = matrix_type == "adamw" ? "adamw" : "lion";
  return {{"grad_clip", 1.0},
          {"matrix", {{"type", matrix_type}, {"lr", 0.01}}},
          {"embedding", {{"type", emb}, {"lr", 0.001}}}};
}

// One rank's view: which flat elements its groups update, and its optimizer state by name.
struct RankPlan {
  std::vector<std::pair<int64_t, int64_t>> ranges;  // (offset, numel) of what it updates
  std::map<std::string, size_t> state;              // optimizer state tensor name -> bytes
  std::map<std::string, int> whole;                 // matrix-optimizer params it updates whole
  json plan;
};

RankPlan build(Ops& ops, const std::string& type, int rank, int W, bool data_parallel) {
  Arena arena(ops);
  ParamTable table(small_model(), Precision{}, arena);
  OptimizerSetup setup = make_optimizer_setup(optimizer_config(type), "test", table);
  auto comm = make_rank_stand_in(rank, W);
  std::unique_ptr<DataParallel> dp;
  if (data_parallel) dp = std::make_unique<DataParallel>(*comm, ops, table, setup);
  RankPlan out;
  for (ParamGroup& g : setup.groups) {
    g.optimizer->reserve_state(arena, g.params);
    for (Param* p : g.params) {
      out.ranges.emplace_back(p->offset, p->weight.numel());
      if (needs_whole_matrices(g.optimizer->type())) {
        const Param& orig = table.get(p->name);
        REQUIRE(p == &orig);  // the table's own parameter, not a slice
        out.whole[p->name] = 1;
      }
    }
  }
  for (const Arena::Entry& e : arena.entries())
    if (e.category == "optimizer") out.state[e.name] += e.bytes;
  if (dp) out.plan = dp->plan();
  return out;
}
}  // namespace

TEST_CASE("data parallel plan: every element updated by one rank, state only there", "[dist]") {
  auto ops = make_ops("cpu");
  for (std::string type : {"adamw", "lion", "muon", "soap", "mousse"}) {
    const RankPlan single = build(*ops, type, 0, 1, false);
    Arena a(*ops);
    const int64_t numel = ParamTable(small_model(), Precision{}, a).numel();
    for (int W : {1, 2, 3, 5, 20}) {  // 20 > 18 matrices: some ranks own no matrix
      INFO(type << " W=" << W);
      std::vector<int> covered(size_t(numel), 0);
      std::map<std::string, size_t> state_bytes;
      std::map<std::string, int> holders;  // state tensor name -> ranks holding it
      std::map<std::string, int> owner_seen;
      for (int r = 0; r < W; r++) {
        const RankPlan p = build(*ops, type, r, W, true);
        for (auto [off, n] : p.ranges)
          for (int64_t i = off; i < off + n; i++) covered[size_t(i)]++;
        for (auto& [name, bytes] : p.state) state_bytes[name] += bytes, holders[name]++;
        for (auto& [name, one] : p.whole) {
          owner_seen[name] += one;
          // the plan every rank stores with its checkpoint names this rank as the owner
          REQUIRE(p.plan["owners"].value(name, -1) == r);
        }
        REQUIRE(p.plan["world_size"] == W);
      }
      // every element of every parameter is updated by exactly one rank
      REQUIRE(std::count(covered.begin(), covered.end(), 1) == numel);
      // summed over the ranks, the optimizer state is exactly the single process's, tensor by
      // tensor (ZeRO-1 slices add up; a whole matrix's state lives on one rank only)
      REQUIRE(state_bytes == single.state);
      if (needs_whole_matrices(type)) {
        REQUIRE(owner_seen.size() == 18);
        for (auto& [name, n] : owner_seen) REQUIRE(n == 1);
        for (auto& [name, n] : holders)
          if (name.find("blocks.") != std::string::npos) REQUIRE(n == 1);
      }
    }
  }
}
