// Every optimizer's step on the CUDA backend against the CPU reference (both f32), on the same
// random weights and gradients at the real 162m matrix shapes (attn qkv 2304x768, attn o
// 768x768, mlp fc 3072x768, mlp proj 768x3072; two of each, so the same-shape batching of
// Muon / Mousse is exercised), for a few steps including preconditioner refreshes.
//
// What is compared: the parameter UPDATE W_t − W_0 after every step, as a relative Frobenius
// error per matrix (‖ΔW_gpu − ΔW_cpu‖ / ‖ΔW_cpu‖). Bases (eigenvectors) are never compared: their
// signs and the order / rotation inside (near-)degenerate eigenspaces are free, and every
// optimizer's update is invariant to them (Mousse: a function of L and R only; SOAP: Adam
// coordinates flip sign together with the basis vector, see the SOAP note below).
//
// Tolerances (why they are what they are):
//  - AdamW, Lion: elementwise f32 with the same formula; only the order of operations and
//    the compiler's contraction (FMA) differ: 1e-5. (Lion's sign could flip where
//    β1 m + (1−β1) g is within round-off of 0; with continuous random data that is a handful of
//    entries at most, each contributing 2·lr, i.e. ~1e-3·sqrt(k/n) relative: far below 1e-5
//    only when no flip happens at all, so a failure here is worth a look before loosening.)
//  - Muon (f32 NS): cuBLAS vs OpenBLAS f32 GEMMs differ by ~1e-6 relative per product; NS5
//    amplifies errors in the smallest singular directions by up to ~a^5 ≈ 480 (a = 3.4445 is the
//    slope at 0), so 5e-4 is expected: 2e-3.
//  - Muon with bf16 NS (the CUDA default): bf16 has 8 bits of mantissa (4e-3 relative per
//    rounding) through 15 GEMMs: the update differs by a few percent from the f32 CPU one: 6e-2.
//    The same for Mousse's CUDA default (bf16 NS, bases and whitening GEMMs in bf16).
//  - Mousse (f32 NS, f32 eigh on both, cuSOLVER vs LAPACK): eigenvalues agree to ~1e-6 of the
//    largest; s = λ^(−1/8) has a small relative sensitivity (1/8 of λ's), but the trace-normalised
//    factors are rank-deficient early (L of fc is 3072² of rank 768·t), where eigenvalues sit
//    at ε + round-off. After a step, new gradients DO have components in the previous basis's
//    null space, where the trace-normalised f32 eigenvalues are round-off of ~n·u·‖L‖ ≈ 4e-7
//    (2304², measured effect on an H100: 1–1.5% update differences at ε = 1e-5, only on the
//    rectangular shapes, only after the first step): (λ + ε)^(−1/8) then scales arbitrary
//    null-space directions by amounts that differ by ~0.5% between LAPACK and cuSOLVER. The f32
//    tests therefore use ε = 1e-3 (round-off / ε ~ 4e-4), and square gradients are
//    well-conditioned as for SOAP. Then NS as for Muon: 5e-3.
//  - SOAP: Adam in the eigenbasis is NOT invariant to a rotation inside a degenerate (or
//    numerically near-degenerate) eigenspace, and a rank-deficient factor's null space is one.
//    So SOAP runs with max_precond_dim 768: only the 768-dim sides are preconditioned, whose
//    factors are full rank (G has 768 rows or columns, and after the first step the EMA has
//    rank 768). Eigenvectors of close eigenvalues are only determined to ~1e-6·λ_max/gap and
//    Adam normalises every coordinate to O(1), so the square shapes get well-conditioned
//    gradients (compare_optimizer's well_conditioned): 2e-2.
//
// Without a usable GPU the executable prints a SKIPPED line and exits 77 (ctest: skipped).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "gpu_test_util.h"
#include "optim_rig.h"

using namespace mousse;
using namespace mousse::gputest;
using namespace mousse::otest;

namespace {

const Shapes k162m = {{2304, 768}, {2304, 768}, {768, 768},  {768, 768},
                      {3072, 768}, {3072, 768}, {768, 3072}, {768, 3072}};
// Mousse refreshes eigendecompose every factor on the CPU too (3072² in LAPACK takes seconds):
// one matrix of each shape plus a second 768x768 keep the batching covered.
const Shapes k162m_small = {{2304, 768}, {768, 768}, {768, 768}, {3072, 768}, {768, 3072}};

std::vector<double> randn_d(size_t n, uint64_t seed, double sd) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, sd);
  std::vector<double> v(n);
  for (double& x : v) x = double(float(d(rng)));  // representable in f32: both sides see it
  return v;
}

double rel_diff(const std::vector<double>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); i++) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

// Runs `steps` steps of cfg on the CPU and on the GPU from the same weights and gradients and
// checks the relative update difference of every matrix after every step against tol.
//
// well_conditioned: square gradients get 2·sd·sqrt(n) added on the diagonal. A square Gaussian's
// singular values reach down to 0 with gaps ~ λ_max / n² there (Marchenko–Pastur at ratio 1),
// so f32 eigenvectors of GGᵀ at the small end are round-off (cuSOLVER and LAPACK disagree by
// ~5% in SOAP's update, measured on an H100). The shift keeps every singular value near
// 2·sd·sqrt(n) ± sd·sqrt(n): gaps ~ 1/n of the spectrum, as for the rectangular shapes.
//
// The CPU reference runs the same config with the CUDA-only bf16 choices (stats_dtype,
// whiten_dtype, ns_dtype "bf16") in the parameter dtype: the comparison then measures what the
// bf16 choices cost, at the bf16 tolerance. Statistics in TF32 (stats_dtype "auto" on CUDA) are
// emulated on the CPU ("tf32"), which rounds to nearest where tensor cores may truncate.
// stats_tol > 0: the statistics (state named <type>.L.* and <type>.R.*) are compared after every
// step too, at that tolerance; tol = 0: only they are (not the updates).
void compare_optimizer(const json& cfg, const Shapes& shapes, int steps, double tol,
                       double lr = 0.02, bool well_conditioned = false, double stats_tol = 0.0) {
  json cpu_cfg = cfg;
  for (const char* key : {"stats_dtype", "whiten_dtype", "ns_dtype"})
    if (cpu_cfg.value(key, "") == "bf16") cpu_cfg[key] = "param";
  const std::string type = cfg.value("type", "");
  if ((type == "mousse" || type == "soap") && cpu_cfg.value("stats_dtype", "auto") == "auto")
    cpu_cfg["stats_dtype"] = "tf32";
  OptimRig rc(cpu(), cpu_cfg, shapes), rg(gpu(), cfg, shapes);
  std::vector<std::vector<double>> w0;
  for (size_t i = 0; i < shapes.size(); i++) {
    const size_t n = size_t(shapes[i].first * shapes[i].second);
    w0.push_back(randn_d(n, 100 + i, 0.02));
    rc.set(rc.params[i].weight, w0.back());
    rg.set(rg.params[i].weight, w0.back());
  }
  for (int t = 0; t < steps; t++) {
    std::vector<std::vector<double>> g;
    for (size_t i = 0; i < shapes.size(); i++) {
      const int64_t m = shapes[i].first, n = shapes[i].second;
      g.push_back(randn_d(size_t(m * n), 1000 * (t + 1) + i, 1e-3));
      if (well_conditioned && m == n)
        for (int64_t k = 0; k < n; k++)
          g.back()[size_t(k * n + k)] += double(float(2e-3 * std::sqrt(double(n))));
    }
    rc.set_grads(g);
    rg.set_grads(g);
    const bool diag = t == steps - 1;  // the diagnostics path too, on the last step
    rc.step(lr, diag, 0.9);
    rg.step(lr, diag, 0.9);
    if (stats_tol > 0) {
      int compared = 0;
      for (size_t k = 0; k < rc.arena->entries().size(); k++) {
        const auto& ec = rc.arena->entries()[k];
        if (ec.category != "optimizer" || (ec.name.rfind(type + ".L.", 0) != 0 &&
                                           ec.name.rfind(type + ".R.", 0) != 0))
          continue;
        const auto& eg = rg.arena->entries()[k];
        REQUIRE(eg.name == ec.name);
        const CloseResult r = closeness(rg.get(*eg.target), rc.get(*ec.target), stats_tol);
        INFO(cfg.dump() << ": step " << t + 1 << ", " << ec.name << ": worst ratio " << r.ratio
                        << " (got " << r.got << ", want " << r.want << ", rtol " << stats_tol << ")");
        CHECK(!r.nonfinite);
        CHECK(r.ratio <= 1.0);
        compared++;
      }
      CHECK(compared > 0);
    }
    if (tol == 0) continue;  // statistics only
    for (size_t i = 0; i < shapes.size(); i++) {
      std::vector<double> dc = rc.get(rc.params[i].weight), dg = rg.get(rg.params[i].weight);
      for (size_t k = 0; k < dc.size(); k++) {
        dc[k] -= w0[i][k];
        dg[k] -= w0[i][k];
      }
      const double e = rel_diff(dg, dc);
      INFO(cfg.dump() << ": step " << t + 1 << ", matrix " << i << " (" << shapes[i].first << "x"
                      << shapes[i].second << "): relative update difference " << e << ", tol "
                      << tol);
      CHECK(std::isfinite(e));
      CHECK(e <= tol);
    }
  }
  if (tol > 0 && type != "adamw" && type != "lion") {
    const json dc = rc.opt->diagnostics(), dg = rg.opt->diagnostics();
    INFO("diagnostics cpu " << dc.dump().substr(0, 300) << " gpu " << dg.dump().substr(0, 300));
    REQUIRE(dg.contains("update_rms"));
    const double uc = dc["update_rms"].get<double>(), ug = dg["update_rms"].get<double>();
    CHECK(std::fabs(ug - uc) <= 2 * tol * std::fabs(uc) + 1e-12);
  }
  std::printf("  %-60s ok (%d steps)\n", cfg.dump().c_str(), steps);
  std::fflush(stdout);
}

}  // namespace

TEST_CASE("cuda optimizer step vs cpu: adamw and lion", "[gpu][optim]") {
  compare_optimizer({{"type", "adamw"}}, k162m, 3, 1e-5);
  compare_optimizer({{"type", "lion"}, {"weight_decay", 0.01}}, k162m, 3, 1e-5);
}

TEST_CASE("cuda optimizer step vs cpu: muon ns5 and polar_express (f32 NS)", "[gpu][optim]") {
  compare_optimizer({{"type", "muon"}, {"ns_dtype", "param"}}, k162m, 3, 2e-3);
  compare_optimizer({{"type", "muon"}, {"ns_dtype", "param"}, {"orthogonalizer", "polar_express"},
                     {"nesterov", false}},
                    k162m, 3, 2e-3);
}

TEST_CASE("cuda optimizer step vs cpu: muon with bf16 NS (the CUDA default)", "[gpu][optim]") {
  compare_optimizer({{"type", "muon"}}, k162m, 2, 6e-2);
}

TEST_CASE("cuda optimizer step vs cpu: soap with refreshes", "[gpu][optim]") {
  // first call: eigh basis (no update); Adam steps k = 1, 2, 3 with a QR refresh at k = 2
  compare_optimizer({{"type", "soap"}, {"update_interval", 2}, {"max_precond_dim", 768},
                     {"stats_dtype", "param"}},
                    k162m, 4, 2e-2, 0.02, true);
  compare_optimizer({{"type", "soap"}, {"update_interval", 2}, {"max_precond_dim", 768},
                     {"normalize_grads", true}, {"stats_dtype", "param"}},
                    k162m, 3, 2e-2, 0.02, true);
}

TEST_CASE("cuda optimizer step vs cpu: soap and mousse with TF32 statistics (the CUDA default)",
          "[gpu][optim]") {
  // Against the CPU's TF32 emulation, which rounds to nearest where tensor cores may truncate:
  // per operand up to 2^-10 apart, so the statistics themselves are compared at 2e-3 (a wrong
  // product, transpose or EMA weight would be off by O(1)). What the updates do with that
  // difference is not a tolerance one can argue from the CPU: SOAP's early Adam steps are close
  // to sign(G') in the eigenbasis, and at 768 dimensions a 1e-4 perturbation of the statistics
  // rotates eigenvectors of nearby eigenvalues by a lot (sensitivity ~ λ / gap ~ n), so SOAP is
  // compared on its statistics only; Mousse's update (whitening with power −1/8, then NS) is
  // compared at 2e-2. The SOAP and Mousse updates with exact statistics are compared tightly
  // above, so these two cases only have to show the TF32 statistics are the right ones.
  compare_optimizer({{"type", "soap"}, {"update_interval", 2}, {"max_precond_dim", 768}}, k162m,
                    3, 0.0, 0.02, true, 2e-3);
  compare_optimizer({{"type", "mousse"}, {"update_interval", 2}, {"ns_dtype", "param"},
                     {"whiten_dtype", "param"}, {"eps", 1e-3}},
                    k162m_small, 3, 2e-2, 0.02, true, 2e-3);
}

TEST_CASE("cuda optimizer step vs cpu: mousse both sides, with refreshes", "[gpu][optim]") {
  // update_interval 2: eigendecompositions at steps 1 and 3 (t = 0, 2)
  compare_optimizer({{"type", "mousse"}, {"update_interval", 2}, {"ns_dtype", "param"},
                     {"whiten_dtype", "param"}, {"eps", 1e-3}, {"stats_dtype", "param"}},
                    k162m_small, 3, 5e-3, 0.02, true);
}

TEST_CASE("cuda optimizer step vs cpu: mousse output side and input side", "[gpu][optim]") {
  compare_optimizer({{"type", "mousse"}, {"update_interval", 2}, {"ns_dtype", "param"},
                     {"whiten_dtype", "param"}, {"eps", 1e-3}, {"stats_dtype", "param"},
                     {"whiten", "output"}},
                    k162m_small, 3, 5e-3, 0.02, true);
  compare_optimizer({{"type", "mousse"}, {"update_interval", 2}, {"ns_dtype", "param"},
                     {"whiten_dtype", "param"}, {"eps", 1e-3}, {"stats_dtype", "param"},
                     {"whiten", "input"}, {"nesterov", true}},
                    k162m_small, 3, 5e-3, 0.02, true);
}

TEST_CASE("cuda optimizer step vs cpu: mousse with the overlapped refresh (f32)", "[gpu][optim]") {
  // refresh_overlap 1: the refresh of step 2 runs on a worker thread with its own CudaOps (its
  // own stream and cuSOLVER handle; the CPU's on a worker thread too) and takes effect at step
  // 3; the refresh of step 4 is still running when the rig is destroyed (its destructor waits).
  compare_optimizer({{"type", "mousse"}, {"update_interval", 2}, {"refresh_overlap", 1},
                     {"ns_dtype", "param"}, {"whiten_dtype", "param"}, {"eps", 1e-3},
                     {"stats_dtype", "param"}},
                    k162m_small, 5, 5e-3, 0.02, true);
}

TEST_CASE("cuda optimizer step vs cpu: mousse power_qr refresh (f32)", "[gpu][optim]") {
  // update_interval 1: the exact eigh at step 1, then a subspace-iteration refresh at steps 2, 3
  // (column_dots, the host sort, gather_columns, and the batched Cholesky QR: cuSOLVER's potrf
  // and cuBLAS's trsm against LAPACK's and OpenBLAS's, with three 768² factors in one stack)
  compare_optimizer({{"type", "mousse"}, {"update_interval", 1}, {"ns_dtype", "param"},
                     {"whiten_dtype", "param"}, {"eps", 1e-3}, {"whiten", "output"},
                     {"refresh", "power_qr"}, {"stats_dtype", "param"}},
                    k162m_small, 3, 5e-3, 0.02, true);
}

TEST_CASE("cuda optimizer step vs cpu: mousse with bf16 NS and bf16 bases (the CUDA default)",
          "[gpu][optim]") {
  compare_optimizer({{"type", "mousse"}, {"update_interval", 2}, {"whiten", "output"}},
                    k162m_small, 2, 6e-2);
  // the default: both sides (two basis GEMMs sharing the bf16 copy buffer, Gᵀ G statistics);
  // well-conditioned square gradients, as the f32 cases (see compare_optimizer)
  compare_optimizer({{"type", "mousse"}, {"update_interval", 2}}, k162m_small, 3, 6e-2, 0.02,
                    true);
  // and the fastest configuration: bf16 statistics GEMMs and the power_qr refresh
  // (against f32 statistics on the CPU: bf16-rounded gradients move the small eigenvalues, so
  // well-conditioned square gradients here too)
  compare_optimizer({{"type", "mousse"}, {"update_interval", 1}, {"whiten", "output"},
                     {"stats_dtype", "bf16"}, {"refresh", "power_qr"}},
                    k162m_small, 3, 6e-2, 0.02, true);
}

// Cholesky QR on the device (cuSOLVER potrf, cuBLAS trsm, batched f64 GEMMs) with a stack in
// which one slice is rank deficient (a zero column) and one not finite
// (orthonormalize_fallback_case): exactly those two are redone with Householder QR (cuSOLVER
// geqrf/orgqr), the good slice matches the CPU's Q, the rank-deficient one still comes out
// orthonormal, the non-finite one visibly not finite.
TEST_CASE("cuda orthonormalize: Cholesky QR with per-slice Householder fallbacks", "[gpu][optim]") {
  const int64_t d = 64;
  int fc = -1, fg = -1;
  const std::vector<double> qc = orthonormalize_fallback_case(cpu(), d, 77, fc);
  const std::vector<double> qg = orthonormalize_fallback_case(gpu(), d, 77, fg);
  CHECK(fc == 2);
  CHECK(fg == 2);
  auto slice = [&](const std::vector<double>& q, int64_t k) {
    return std::vector<double>(q.begin() + k * d * d, q.begin() + (k + 1) * d * d);
  };
  CHECK(rel_diff(slice(qg, 0), slice(qc, 0)) < 1e-4);
  for (int64_t k : {0, 1}) {
    INFO("slice " << k);
    CHECK(orthogonality_error(qg, k, d) < 1e-4);
  }
  const std::vector<double> q2 = slice(qg, 2);
  CHECK(std::any_of(q2.begin(), q2.end(), [](double x) { return !std::isfinite(x); }));
}

int main(int argc, char* argv[]) {
  if (!cuda_available()) {
    const size_t n = Catch::getRegistryHub().getTestCaseRegistry().getAllTests().size();
    std::printf("SKIPPED: no usable GPU (cuda_available() == false): %zu GPU optimizer tests not "
                "run\n", n);
    std::fflush(stdout);
    return 77;
  }
  std::printf("GPU optimizer tests on %s\n", gpu().name().c_str());
  return Catch::Session().run(argc, argv);
}
