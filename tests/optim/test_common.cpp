// Properties every optimizer must have: finite updates on all-zero gradients, lower loss on a
// least-squares problem, bit-exact resume from saved state, validated configs.
#include "optim_test_util.h"

using namespace mousse;
using namespace mousse::otest;

namespace {

std::vector<json> all_configs() {
  return {
      {{"type", "adamw"}},
      {{"type", "lion"}},
      {{"type", "muon"}},
      {{"type", "muon"}, {"orthogonalizer", "polar_express"}, {"nesterov", false}},
      {{"type", "muon"}, {"orthogonalizer", "exact"}},
      {{"type", "soap"}, {"update_interval", 3}},
      {{"type", "mousse"}, {"update_interval", 3}},
      {{"type", "mousse"}, {"update_interval", 2}, {"whiten", "smaller"}, {"nesterov", true}},
      {{"type", "mousse"}, {"update_interval", 2}, {"whiten", "output"}, {"grafting", false}},
      {{"type", "mousse"}, {"update_interval", 2}, {"whiten", "input"},
       {"orthogonalizer", "exact"}, {"trace_normalize", false}},
      {{"type", "mousse"}, {"update_interval", 2}, {"refresh", "power_qr"}},
  };
}

const std::vector<std::pair<int64_t, int64_t>> kShapes = {{8, 12}, {12, 8}};

}  // namespace

TEST_CASE("all-zero gradients give finite updates in every optimizer", "[optim][robust]") {
  for (const json& cfg : all_configs()) {
    INFO(cfg.dump());
    Rig r(cfg, kShapes);
    std::mt19937_64 rng(1);
    std::vector<Mat> w0, zeros;
    for (size_t i = 0; i < kShapes.size(); i++) {
      w0.push_back(randn(kShapes[i].first * kShapes[i].second, rng));
      zeros.push_back(Mat(w0.back().size(), 0.0));
      r.set(r.params[i].weight, w0.back());
    }
    for (int t = 0; t < 4; t++) r.step(zeros, 0.1, true);
    for (size_t i = 0; i < kShapes.size(); i++) {
      Mat w = r.w(i);
      REQUIRE(all_finite(w));
      // only weight decay moves the weights
      CHECK(rel_err(w, w0[i]) < 0.1);
    }
    for (auto& kv : r.state()) {
      INFO(kv.first);
      CHECK(all_finite(kv.second));
    }
    const json d = r.opt->diagnostics();
    if (d.contains("update_rms")) CHECK(std::isfinite(d["update_rms"].get<double>()));
  }
}

TEST_CASE("every optimizer lowers a least-squares loss", "[optim][descent]") {
  // f(W) = ½/N ‖W X − Y‖², Y = W* X, X (n × N): G = (W X − Y) Xᵀ / N, for each matrix.
  const int64_t N = 64;
  for (const json& base : all_configs()) {
    json cfg = base;
    const std::string type = cfg["type"];
    const double lr = type == "adamw" ? 0.05 : type == "lion" ? 0.02 : type == "soap" ? 0.05 : 0.1;
    INFO(cfg.dump());
    Rig r(cfg, kShapes);
    std::mt19937_64 rng(2);
    std::vector<Mat> X, Y;
    for (auto& s : kShapes) {
      const int64_t m = s.first, n = s.second;
      Mat x = randn(n * N, rng), wstar = randn(m * n, rng, 0.3), y(size_t(m * N), 0.0);
      for (int64_t i = 0; i < m; i++)
        for (int64_t k = 0; k < n; k++)
          for (int64_t j = 0; j < N; j++) y[size_t(i * N + j)] += wstar[size_t(i * n + k)] * x[size_t(k * N + j)];
      X.push_back(x);
      Y.push_back(y);
    }
    auto loss_and_grads = [&](std::vector<Mat>* grads) {
      double loss = 0;
      for (size_t p = 0; p < kShapes.size(); p++) {
        const int64_t m = kShapes[p].first, n = kShapes[p].second;
        Mat w = r.w(p), res(size_t(m * N), 0.0), g(size_t(m * n), 0.0);
        for (int64_t i = 0; i < m; i++)
          for (int64_t j = 0; j < N; j++) {
            double v = -Y[p][size_t(i * N + j)];
            for (int64_t k = 0; k < n; k++) v += w[size_t(i * n + k)] * X[p][size_t(k * N + j)];
            res[size_t(i * N + j)] = v;
            loss += 0.5 * v * v / double(N);
          }
        for (int64_t i = 0; i < m; i++)
          for (int64_t k = 0; k < n; k++) {
            double v = 0;
            for (int64_t j = 0; j < N; j++) v += res[size_t(i * N + j)] * X[p][size_t(k * N + j)];
            g[size_t(i * n + k)] = v / double(N);
          }
        if (grads) grads->push_back(g);
      }
      return loss;
    };
    double first = 0, last = 0;
    const int steps = 80;
    for (int t = 0; t < steps; t++) {
      std::vector<Mat> g;
      const double l = loss_and_grads(&g);
      if (t == 0) first = l;
      r.step(g, lr * (1.0 - double(t) / double(steps)));
      last = l;
    }
    last = loss_and_grads(nullptr);
    INFO("loss " << first << " -> " << last);
    CHECK(std::isfinite(last));
    CHECK(last < 0.3 * first);
  }
}

TEST_CASE("resume from saved optimizer state is bit-exact (f32, CPU)", "[optim][resume]") {
  for (const json& cfg : all_configs()) {
    INFO(cfg.dump());
    std::mt19937_64 rng(3);
    std::vector<std::vector<Mat>> grads;
    for (int t = 0; t < 11; t++) {
      std::vector<Mat> g;
      for (auto& s : kShapes) g.push_back(randn(s.first * s.second, rng));
      grads.push_back(g);
    }
    Rig a(cfg, kShapes, DType::f32);
    for (size_t i = 0; i < kShapes.size(); i++)
      a.set(a.params[i].weight, randn(kShapes[i].first * kShapes[i].second, rng));
    for (int t = 0; t < 5; t++) a.step(grads[size_t(t)], 0.02);
    // checkpoint: weights, optimizer state tensors, host-side extra (through JSON text)
    std::vector<Mat> w;
    for (size_t i = 0; i < kShapes.size(); i++) w.push_back(a.w(i));
    auto state = a.state();
    const std::string extra = a.opt->save_extra().dump();
    for (int t = 5; t < 11; t++) a.step(grads[size_t(t)], 0.02);

    Rig b(cfg, kShapes, DType::f32);
    for (size_t i = 0; i < kShapes.size(); i++) b.set(b.params[i].weight, w[i]);
    b.load_state(state);
    b.opt->load_extra(json::parse(extra));
    b.steps = 5;
    for (int t = 5; t < 11; t++) b.step(grads[size_t(t)], 0.02);
    for (size_t i = 0; i < kShapes.size(); i++) CHECK(a.w(i) == b.w(i));
    auto sa = a.state(), sb = b.state();
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); i++) {
      INFO(sa[i].first);
      CHECK(sa[i].second == sb[i].second);
    }
  }
}

TEST_CASE("optimizer configs are validated", "[optim][config]") {
  auto make = [](const json& cfg, const std::string& group = "matrix") {
    ConfigNode node(cfg, "optimizer.matrix", "cfg.json");
    auto opt = make_optimizer(node, group);
    node.finish();
    return opt;
  };
  CHECK(make({{"type", "mousse"}})->describe().find("alpha=0.125") != std::string::npos);
  CHECK(make({{"type", "muon"}})->describe().find("nesterov=true") != std::string::npos);
  CHECK(make({{"type", "soap"}})->describe().find("update_interval=10") != std::string::npos);
  CHECK_THROWS_AS(make({{"type", "mousse"}, {"alpah", 0.1}}), Error);          // typo
  // A key of another type (AdamW's betas left in a group switched to Muon by --set): the
  // error lists what a Muon group takes.
  CHECK_THROWS_WITH(make({{"type", "muon"}, {"betas", {0.9, 0.95}}}),
                    Catch::Contains("'optimizer.matrix.betas'") &&
                        Catch::Contains("of type 'muon' takes:") && Catch::Contains("momentum"));
  CHECK_THROWS_AS(make({{"type", "mousse"}, {"whiten", "left"}}), Error);      // by side
  CHECK_THROWS_AS(make({{"type", "mousse"}, {"eps", 0.0}}), Error);
  CHECK(make({{"type", "mousse"}, {"refresh", "power_qr"}, {"eigh_every", 5}})->describe().find(
            "refresh=power_qr eigh_every=5") != std::string::npos);
  CHECK_THROWS_AS(make({{"type", "mousse"}, {"refresh", "qr"}}), Error);
  CHECK_THROWS_AS(make({{"type", "mousse"}, {"eigh_every", 5}}), Error);  // needs power_qr
  CHECK_THROWS_AS(make({{"type", "mousse"}, {"qr", "cholesky"}}), Error);  // needs power_qr
  CHECK(make({{"type", "mousse"}, {"refresh", "power_qr"}, {"qr", "cholesky"}})->describe().find(
            "qr=cholesky") != std::string::npos);
  CHECK(make({{"type", "soap"}})->describe().find("qr=auto") != std::string::npos);
  CHECK_THROWS_AS(make({{"type", "soap"}, {"qr", "givens"}}), Error);
  CHECK_THROWS_AS(make({{"type", "mousse"}, {"refresh", "power_qr"}, {"eigh_every", -1}}), Error);
  CHECK_THROWS_AS(make({{"type", "mousse"}, {"stats_dtype", "f16"}}), Error);
  CHECK_THROWS_AS(make({{"type", "muon"}, {"orthogonalizer", "svd"}}), Error);
  CHECK_THROWS_AS(make({{"type", "muon"}, {"update_scale", "sqrt"}}), Error);
  CHECK_THROWS_AS(make({{"type", "soap"}, {"betas", {0.9}}}), Error);
  CHECK_THROWS_AS(make({{"type", "muon"}}, "lm_head"), Error);  // matrix optimizers only
  CHECK_NOTHROW(make({{"type", "lion"}}, "lm_head"));
}

TEST_CASE("update scale conventions", "[optim][config]") {
  CHECK(update_scale(UpdateScale::sqrt_out_in, 3072, 768) == Approx(2.0));
  CHECK(update_scale(UpdateScale::sqrt_out_in, 768, 3072) == Approx(0.5));
  CHECK(update_scale(UpdateScale::keller, 3072, 768) == Approx(2.0));
  CHECK(update_scale(UpdateScale::keller, 768, 3072) == Approx(1.0));
  CHECK(update_scale(UpdateScale::moonlight, 768, 3072) == Approx(0.2 * std::sqrt(3072.0)));
}

TEST_CASE("matrices are grouped by shape in the order their shapes first occur", "[optim]") {
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 20; trial++) {
    std::vector<Param> ps(1 + rng() % 12);
    for (size_t i = 0; i < ps.size(); i++) {
      ps[i].name = "w" + std::to_string(i);
      ps[i].weight.shape = Shape{int64_t(1 + rng() % 3), int64_t(1 + rng() % 3)};
    }
    std::vector<Param*> params;
    for (Param& p : ps) params.push_back(&p);
    const std::vector<ShapeGroup> groups = group_by_shape(params);
    std::vector<int> seen(ps.size(), 0);
    size_t first_prev = 0;
    for (size_t g = 0; g < groups.size(); g++) {
      REQUIRE(!groups[g].index.empty());
      CHECK((g == 0 || groups[g].index[0] > first_prev));  // first occurrences in order
      first_prev = groups[g].index[0];
      CHECK(std::is_sorted(groups[g].index.begin(), groups[g].index.end()));
      for (size_t i : groups[g].index) {
        seen[i]++;
        CHECK(ps[i].weight.shape[0] == groups[g].rows);
        CHECK(ps[i].weight.shape[1] == groups[g].cols);
      }
      for (size_t h = 0; h < g; h++)
        CHECK((groups[h].rows != groups[g].rows || groups[h].cols != groups[g].cols));
    }
    CHECK(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
  }
  Param vec;
  vec.name = "ln.bias";
  vec.weight.shape = Shape{7};
  std::vector<Param*> bad{&vec};
  CHECK_THROWS_WITH(group_by_shape(bad), Catch::Contains("ln.bias is not a matrix"));
}

TEST_CASE("grad_scale multiplies the gradient first, in every optimizer", "[optim][robust]") {
  for (const json& cfg : all_configs()) {
    INFO(cfg.dump());
    Rig a(cfg, kShapes), b(cfg, kShapes);
    std::mt19937_64 rng(4);
    same_random_weights(a, b, rng);
    for (int t = 0; t < 5; t++) {
      std::vector<Mat> g, g_half;
      for (auto& s : kShapes) {
        g.push_back(randn(s.first * s.second, rng));
        g_half.push_back(g.back());
        for (double& x : g_half.back()) x *= 0.25;
      }
      a.step(g, 0.05, false, 0.25);
      b.step(g_half, 0.05);
    }
    for (size_t i = 0; i < kShapes.size(); i++) CHECK(rel_err(a.w(i), b.w(i)) < 1e-12);
  }
}
