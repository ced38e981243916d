// Ownership of whole matrices for Muon/SOAP/Mousse under data parallelism (issue 7): every matrix
// has exactly one owner, the assignment is deterministic and balanced by cost.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "core/arena.h"
#include "dist/data_parallel.h"
#include "model/params.h"
#include "optim/optimizer.h"

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
