// bench-optim-cuda: the matrix optimizers' step time on the CUDA backend at the real matrix
// shapes of the 162m (12 layers, C = 768) and 834m (24 layers, C = 1536) presets: per layer
// attn.{q,k,v,o} C×C, mlp.fc 4C×C, mlp.proj C×4C. No model: random gradients, f32 master
// weights / state as in training.
//
// Per optimizer: the plain step (no preconditioner work), the refresh step (Mousse's
// eigendecompositions, SOAP's QR refresh; its first call's eigh is reported separately as
// "init"), the amortised step at update_interval 10 (the mean over 10 consecutive steps, one
// refresh included), and the optimizer state bytes (arena category "optimizer") and scratch
// ("optimizer_scratch"). With a full-step time (ms) given, Mousse's amortised overhead over Muon
// is also printed as a fraction of it.
//
// First, the refresh's building block: f32 eigh one by one vs eigh_batched at 768, 1536, 3072.
//
// Then, for the matrix optimizers, the same on the matrices that the busiest of `world` data-
// parallel ranks owns (default 8, the paper's GPUs; 1 skips it): a rank's optimizer work.
//
// Usage: bench-optim-cuda [162m|834m|all] [full_step_ms] [world]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dist/data_parallel.h"
#include "gpu_test_util.h"
#include "optim/matrix_common.h"
#include "optim_rig.h"

using namespace mousse;
using namespace mousse::gputest;
using namespace mousse::otest;

namespace {

struct Row {
  std::string preset, name;
  double init_ms, plain_ms, refresh_ms, amortised_ms;
  size_t state_bytes, scratch_bytes;
};

Shapes model_shapes(int64_t layers, int64_t C) {
  Shapes s;
  for (int64_t l = 0; l < layers; l++) {
    for (int k = 0; k < 4; k++) s.push_back({C, C});
    s.push_back({4 * C, C});
    s.push_back({C, 4 * C});
  }
  return s;
}

// Milliseconds of f() on the device: synchronised before and after.
template <class F>
double timed_ms(Ops& o, F&& f) {
  o.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  o.synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double timed_step(OptimRig& r) { return timed_ms(r.ops, [&] { r.step(0.01); }); }

Row bench(Ops& o, const std::string& preset, const std::string& name, const json& cfg,
          const Shapes& shapes) {
  std::printf("%s %s: %s\n", preset.c_str(), name.c_str(), cfg.dump().c_str());
  std::fflush(stdout);
  OptimRig r(o, cfg, shapes);
  r.poison_scratch = false;  // a test aid, not part of a step
  // Random weights and gradients: one random block per distinct size, uploaded to every matrix.
  std::vector<std::pair<int64_t, std::vector<float>>> blocks;
  for (auto& p : r.params) {
    const int64_t n = p.weight.numel();
    auto it = std::find_if(blocks.begin(), blocks.end(), [&](auto& b) { return b.first == n; });
    if (it == blocks.end()) {
      blocks.push_back({n, randn(size_t(n), 7 + blocks.size(), 1e-3f)});
      it = blocks.end() - 1;
    }
    upload(o, p.grad, it->second);
    upload(o, p.weight, it->second);
  }
  const int T = 10;
  const bool has_refresh = name.rfind("mousse", 0) == 0 || name.rfind("soap", 0) == 0;
  // Step 1: Mousse's first refresh / SOAP's eigh init (also algorithm selection, workspaces).
  const double init = timed_step(r);
  // Steps 2 .. 2T+1: two windows of T. Mousse refreshes at steps 1, T+1, 2T+1 (t % T == 0);
  // SOAP at Adam steps k = T, 2T (calls T+1, 2T+1).
  std::vector<double> ms;
  for (int i = 0; i < 2 * T; i++) ms.push_back(timed_step(r));
  // the second window (steps T+2 .. 2T+1) holds exactly one refresh (step 2T+1, its last)
  std::vector<double> win(ms.begin() + T, ms.end());
  std::vector<double> sorted = win;
  std::sort(sorted.begin(), sorted.end());
  const double plain = sorted[sorted.size() / 2];
  const double refresh = has_refresh ? win.back() : plain;
  double mean = 0;
  for (double v : win) mean += v;
  mean /= double(win.size());
  Row row{preset, name, init, plain, refresh, mean, r.bytes("optimizer"),
          r.bytes("optimizer_scratch")};
  std::printf("  init %.2f ms, plain %.3f ms, refresh %.2f ms, amortised(T=10) %.3f ms, "
              "state %.1f MiB, scratch %.1f MiB\n",
              init, plain, refresh, mean, double(row.state_bytes) / 1048576.0,
              double(row.scratch_bytes) / 1048576.0);
  std::fflush(stdout);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  if (!cuda_available()) {
    std::printf("SKIPPED: no usable GPU (cuda_available() == false): benchmark not run\n");
    return 77;
  }
  const std::string which = argc > 1 ? argv[1] : "all";
  const double full_step_ms = argc > 2 ? std::atof(argv[2]) : 0.0;
  const int world = argc > 3 ? std::atoi(argv[3]) : 8;
  auto ops = make_cuda_ops();
  Ops& o = *ops;
  std::printf("bench-optim-cuda on %s\n", o.name().c_str());

  const std::vector<std::pair<std::string, json>> configs = {
      {"adamw", {{"type", "adamw"}}},
      {"muon", {{"type", "muon"}}},
      {"muon-f32ns", {{"type", "muon"}, {"ns_dtype", "param"}}},
      {"soap", {{"type", "soap"}, {"update_interval", 10}}},
      {"soap-f32stats", {{"type", "soap"}, {"update_interval", 10}, {"stats_dtype", "param"}}},
      {"mousse-both", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "both"}}},
      // the statistics' GEMMs in f32 on CUDA cores (the default is TF32 on tensor cores)
      {"mousse-both-f32stats", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "both"},
                                {"stats_dtype", "param"}}},
      {"mousse-both-f32", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "both"},
                           {"ns_dtype", "param"}, {"whiten_dtype", "param"},
                           {"stats_dtype", "param"}}},
      {"mousse-output", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "output"}}},
      {"mousse-input", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "input"}}},
      // the refresh as one warm-started subspace-iteration step (paper §6.2), and the
      // statistics' GEMMs in bf16 ("-fast"): the refresh column of these rows is a power_qr
      // refresh
      {"mousse-both-pqr", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "both"},
                           {"refresh", "power_qr"}}},
      {"mousse-both-pqr-hh", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "both"},
                              {"refresh", "power_qr"}, {"qr", "householder"}}},
      {"mousse-both-fast", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "both"},
                            {"refresh", "power_qr"}, {"stats_dtype", "bf16"}}},
      {"mousse-output-fast", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "output"},
                              {"refresh", "power_qr"}, {"stats_dtype", "bf16"}}},
      {"mousse-smaller-fast", {{"type", "mousse"}, {"update_interval", 10}, {"whiten", "smaller"},
                               {"refresh", "power_qr"}, {"stats_dtype", "bf16"}}},
  };
  // The refresh's building block: f32 eigendecompositions one by one (ops.eigh: a host
  // synchronisation each) vs one ops.eigh_batched (cusolverDnXsyevBatched when available;
  // MOUSSE_EIGH_BATCHED=0 forces the per-matrix loop without syncs in between).
  for (auto [n, b] : {std::pair<int64_t, int64_t>{768, 12}, {1536, 8}, {3072, 4}}) {
    if (which == "834m" && n == 768) continue;
    std::vector<float> h(size_t(b * n * n));
    auto g = randn(size_t(n * n), 99, 1.f);
    for (int64_t k = 0; k < b; k++)
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
          h[size_t(k * n * n + i * n + j)] = g[size_t(i * n + j)] + g[size_t(j * n + i)];
    DevTensor A = make(o, DType::f32, {b, n, n}, h), Aw(o, DType::f32, {b, n, n});
    DevTensor V(o, DType::f32, {b, n, n}), W(o, DType::f32, {b, n});
    auto run_loop = [&] {
      for (int64_t k = 0; k < b; k++)
        o.eigh(V->slice(k * n * n, Shape{n, n}), W->slice(k * n, Shape{n}),
               A->slice(k * n * n, Shape{n, n}));
    };
    auto run_batched = [&] {
      o.copy(*Aw, *A);
      o.eigh_batched(*V, *W, *Aw);
    };
    for (int rep = 0; rep < 2; rep++) {  // the first round is the warm-up
      const double loop_ms = timed_ms(o, run_loop), batched_ms = timed_ms(o, run_batched);
      if (rep == 1)
        std::printf("eigh f32 %lldx%lld x%lld: one by one %.2f ms, eigh_batched %.2f ms\n",
                    (long long)n, (long long)n, (long long)b, loop_ms, batched_ms);
    }
    std::fflush(stdout);
  }
  // The power_qr refresh's QR: Householder (cuSOLVER geqrf + orgqr per matrix) vs the batched
  // shifted Cholesky QR 3 in f64 (orthonormalize), on Gaussian stacks.
  for (auto [n, b] : {std::pair<int64_t, int64_t>{768, 12}, {3072, 4}}) {
    if (which == "834m" && n == 768) continue;
    auto h = randn(size_t(b * n * n), 98, 1.f);
    DevTensor E = make(o, DType::f32, {b, n, n}, h), Q(o, DType::f32, {b, n, n});
    DevTensor X(o, DType::f64, {b * n * n}), G(o, DType::f64, {b * n * n}), S(o, DType::f64, {b * n});
    PowerQrScratch s;
    s.cholesky = true;
    s.x = *X;
    s.gram = *G;
    s.inv_norm = *S;
    int fallbacks = 0;
    auto householder = [&] {
      for (int64_t k = 0; k < b; k++)
        o.qr_orthonormal(Q->slice(k * n * n, Shape{n, n}), E->slice(k * n * n, Shape{n, n}));
    };
    auto cholesky = [&] { fallbacks = orthonormalize(o, *Q, *E, s); };
    for (int rep = 0; rep < 2; rep++) {  // the first round is the warm-up
      const double hh_ms = timed_ms(o, householder), chol_ms = timed_ms(o, cholesky);
      if (rep == 1)
        std::printf("qr f32 %lldx%lld x%lld: householder one by one %.2f ms, cholesky qr "
                    "batched %.2f ms (%d fallbacks)\n",
                    (long long)n, (long long)n, (long long)b, hh_ms, chol_ms, fallbacks);
    }
    std::fflush(stdout);
  }

  std::vector<Row> rows;
  for (auto [preset, layers, C] : {std::tuple<std::string, int64_t, int64_t>{"162m", 12, 768},
                                   std::tuple<std::string, int64_t, int64_t>{"834m", 24, 1536}}) {
    if (which != "all" && which != preset) continue;
    const Shapes shapes = model_shapes(layers, C);
    for (auto& [name, cfg] : configs) rows.push_back(bench(o, preset, name, cfg, shapes));
    // Data parallel over `world` GPUs (the paper trains on 8): each matrix is updated and
    // refreshed on its owner only (src/dist, assign_owners balanced by matrix_update_cost), so
    // a rank's optimizer work is the step on the matrices it owns. Measured here for the
    // busiest rank of each matrix optimizer; the all-gather of the updated weights that follows
    // is the same for Muon and Mousse and is not included.
    if (world > 1)
      for (auto& [name, cfg] : configs) {
        if (name.rfind("muon", 0) != 0 && name.rfind("mousse", 0) != 0) continue;
        ConfigNode node(cfg, "optimizer", "bench");
        const auto opt = make_optimizer(node, "matrix");
        std::vector<double> cost;
        for (auto& [m, n] : shapes) cost.push_back(matrix_update_cost(*opt, m, n));
        const std::vector<int> owner = assign_owners(cost, world);
        std::vector<double> load(size_t(world), 0.0);
        for (size_t i = 0; i < shapes.size(); i++) load[size_t(owner[i])] += cost[i];
        const int busiest = int(std::max_element(load.begin(), load.end()) - load.begin());
        Shapes mine;
        for (size_t i = 0; i < shapes.size(); i++)
          if (owner[i] == busiest) mine.push_back(shapes[i]);
        rows.push_back(bench(o, preset + "/W" + std::to_string(world), name, cfg, mine));
      }
  }

  std::printf("\n%-9s %-21s %10s %10s %12s %14s %11s %11s\n", "model", "optimizer", "init ms",
              "plain ms", "refresh ms", "amortised ms", "state MiB", "scratch MiB");
  for (const Row& r : rows)
    std::printf("%-9s %-21s %10.2f %10.3f %12.2f %14.3f %11.1f %11.1f\n", r.preset.c_str(),
                r.name.c_str(), r.init_ms, r.plain_ms, r.refresh_ms, r.amortised_ms,
                double(r.state_bytes) / 1048576.0, double(r.scratch_bytes) / 1048576.0);
  // Mousse's amortised overhead over Muon (bf16 NS both)
  for (const Row& m : rows) {
    if (m.name.rfind("mousse", 0) != 0) continue;
    for (const Row& u : rows)
      if (u.preset == m.preset && u.name == "muon") {
        const double d = m.amortised_ms - u.amortised_ms;
        std::printf("%-9s %-21s amortised overhead over muon: %.3f ms", m.preset.c_str(),
                    m.name.c_str(), d);
        if (full_step_ms > 0) std::printf(" = %.2f%% of a %.1f ms step", 100.0 * d / full_step_ms,
                                          full_step_ms);
        std::printf("\n");
      }
  }
  return 0;
}
