// Mousse (src/optim/mousse): the identities of docs/optimizers.md and the paper.
//  - α = 0 equals Muon (whitening becomes a rotation, NS commutes with it), every whitening side;
//  - with the exact polar factor, the closed form L̃^(−α) polar(L̃^(−α) M R̃^(−α)) R̃^(−α) with
//    Algorithm 1's grafting (Python reference), both-sided and each single-sided variant;
//  - trace normalisation makes the update invariant to scaling all gradients by a constant;
//  - a failed eigendecomposition keeps the previous basis and is counted; diagnostics.
#include "optim_test_util.h"
#include "optim/mousse.h"

using namespace mousse;
using namespace mousse::otest;

namespace {

json mousse_cfg(const std::string& whiten, double alpha, const std::string& ortho) {
  return json{{"type", "mousse"},     {"momentum", 0.9},      {"nesterov", false},
              {"beta_pc", 0.9},       {"eps", 1e-5},          {"alpha", alpha},
              {"update_interval", 3}, {"whiten", whiten},     {"trace_normalize", true},
              {"grafting", true},     {"orthogonalizer", ortho}, {"ns_steps", 5},
              {"update_scale", "sqrt_out_in"}, {"weight_decay", 0.01}};
}

std::vector<Mat> grad_seq(int steps, int64_t rows, int64_t cols, uint64_t seed, double sd = 1.0) {
  std::mt19937_64 rng(seed);
  std::vector<Mat> g;
  for (int i = 0; i < steps; i++) g.push_back(randn(rows * cols, rng, sd));
  return g;
}

const std::vector<std::pair<int64_t, int64_t>> kShapes = {{6, 10}, {9, 5}};

}  // namespace

TEST_CASE("Mousse with alpha = 0 equals Muon, every whitening side", "[optim][mousse]") {
  for (bool nesterov : {false, true})
    for (const char* side : {"both", "output", "input", "smaller"}) {
      json mc = mousse_cfg(side, 0.0, "ns5");
      mc["nesterov"] = nesterov;
      mc["update_scale"] = "keller";
      json uc = {{"type", "muon"},        {"momentum", 0.9},     {"nesterov", nesterov},
                 {"orthogonalizer", "ns5"}, {"ns_steps", 5},     {"update_scale", "keller"},
                 {"weight_decay", 0.01}};
      Rig a(mc, kShapes), b(uc, kShapes);
      std::mt19937_64 rng(7);
      same_random_weights(a, b, rng);
      for (int t = 0; t < 7; t++) {
        std::vector<Mat> g;
        for (auto& s : kShapes) g.push_back(randn(s.first * s.second, rng));
        a.step(g, 0.05);
        b.step(g, 0.05);
        for (size_t i = 0; i < kShapes.size(); i++) {
          INFO("side " << side << " nesterov " << nesterov << " step " << t << " param " << i);
          CHECK(rel_err(a.w(i), b.w(i)) < 1e-11);
        }
      }
    }
}

TEST_CASE("Mousse with an exact polar factor equals the closed form", "[optim][mousse]") {
  struct Variant {
    const char* side;
    bool nesterov, trace_normalize, grafting;
    double alpha;
  };
  const Variant variants[] = {{"both", false, true, true, 0.125},
                              {"output", false, true, true, 0.125},
                              {"input", false, true, true, 0.125},
                              {"smaller", false, true, true, 0.25},
                              {"both", true, false, false, 0.25},
                              {"both", true, true, false, 0.5}};
  std::vector<RefJob> jobs;
  for (const Variant& v : variants)
    for (auto shape : kShapes) {
      const int64_t m = shape.first, n = shape.second;
      json cfg = mousse_cfg(v.side, v.alpha, "exact");
      cfg["nesterov"] = v.nesterov;
      cfg["trace_normalize"] = v.trace_normalize;
      cfg["grafting"] = v.grafting;
      Rig r(cfg, {shape});
      std::mt19937_64 rng(11 + uint64_t(m));
      Mat w0 = randn(m * n, rng);
      r.set(r.params[0].weight, w0);
      const int steps = 7;
      std::vector<Mat> g = grad_seq(steps, m, n, 99 + uint64_t(n));
      std::vector<double> lrs;
      RefJob job;
      job.in = {{"mode", "mousse_closed"}, {"w0", to_json_matrix(w0, m, n)},
                {"grads", json::array()},  {"config", cfg}};
      for (int t = 0; t < steps; t++) {
        job.in["grads"].push_back(to_json_matrix(g[size_t(t)], m, n));
        lrs.push_back(0.02 * (t + 1));
        r.step({g[size_t(t)]}, lrs.back());
        job.got.push_back(r.w());
      }
      job.in["lrs"] = lrs;
      job.label = cfg.dump() + " shape " + std::to_string(m) + "x" + std::to_string(n);
      job.tol = 1e-9;
      jobs.push_back(job);
    }
  check_jobs(jobs);
}

TEST_CASE("trace normalisation makes Mousse invariant to the gradient scale", "[optim][mousse]") {
  const int64_t m = 8, n = 5;
  auto run = [&](bool trace, double c) {
    json cfg = mousse_cfg("both", 0.125, "ns5");
    cfg["trace_normalize"] = trace;
    Rig r(cfg, {{m, n}});
    std::mt19937_64 rng(3);
    r.set(r.params[0].weight, randn(m * n, rng));
    std::vector<Mat> g = grad_seq(6, m, n, 5);
    for (auto& gi : g) {
      for (double& x : gi) x *= c;
      r.step({gi}, 0.1);
    }
    return r.w();
  };
  const Mat base = run(true, 1.0);
  for (double c : {10.0, 1e3, 1e5}) CHECK(rel_err(run(true, c), base) < 1e-5);
  // without it, the fixed ε acts differently at another gradient scale
  CHECK(rel_err(run(false, 1e-3), run(false, 1.0)) > 1e-3);
}

TEST_CASE("Mousse keeps the previous basis when an eigendecomposition fails", "[optim][mousse]") {
  json cfg = mousse_cfg("both", 0.125, "ns5");
  cfg["update_interval"] = 1;
  Rig r(cfg, {{6, 4}});
  std::mt19937_64 rng(17);
  r.set(r.params[0].weight, randn(24, rng));
  r.step({randn(24, rng)}, 0.01, true);
  auto basis = [&](const char* name) {
    for (auto& kv : r.state())
      if (kv.first == name) return kv.second;
    FAIL("no state " << name);
    return Mat{};
  };
  const Mat ql = basis("mousse.QL.blocks.0.w"), qr = basis("mousse.QR.blocks.0.w");
  Mat bad = randn(24, rng);
  bad[5] = std::nan("");
  r.step({bad}, 0.01, true);
  auto* mo = dynamic_cast<Mousse*>(r.opt.get());
  REQUIRE(mo);
  CHECK(mo->eigh_failures() == 2);
  CHECK(r.opt->diagnostics()["eigh_failures"].get<int64_t>() == 2);
  CHECK(basis("mousse.QL.blocks.0.w") == ql);
  CHECK(basis("mousse.QR.blocks.0.w") == qr);
}

TEST_CASE("Mousse diagnostics: update RMS, conditioning and RMS of L and R, refresh time",
          "[optim][mousse]") {
  json cfg = mousse_cfg("smaller", 0.125, "ns5");
  Rig r(cfg, {{6, 10}, {9, 5}});
  std::mt19937_64 rng(23);
  r.step({randn(60, rng), randn(45, rng)}, 0.01, true);
  json d = r.opt->diagnostics();
  INFO(d.dump());
  CHECK(d["update_rms"].get<double>() > 0.05);
  CHECK(d["refresh_seconds"].get<double>() >= 0.0);
  CHECK(d["refresh_seconds_total"].get<double>() >= d["refresh_seconds"].get<double>());
  CHECK(d["eigh_failures"].get<int64_t>() == 0);
  // "smaller": L (6×6) for the 6×10 matrix, R (5×5) for the 9×5 one
  CHECK(d["precond"]["blocks.0.w"].contains("L_cond"));
  CHECK(!d["precond"]["blocks.0.w"].contains("R_cond"));
  CHECK(d["precond"]["blocks.1.w"].contains("R_rms"));
  CHECK(!d["precond"]["blocks.1.w"].contains("L_rms"));
  CHECK(d["precond"]["blocks.0.w"]["L_cond"].get<double>() >= 1.0);
  bool has_l1 = false;
  for (auto& e : r.arena->entries()) has_l1 |= e.name == "mousse.L.blocks.1.w";
  CHECK(!has_l1);
}
