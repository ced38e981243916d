// The warm-started subspace-iteration refresh (power_qr_step, src/optim/matrix_common) and
// Mousse's "refresh": "power_qr":
//  - the eigenbasis is a fixed point: one step returns it (signs aside), columns ordered by
//    eigenvalue, largest first, with the eigenvalues as Rayleigh quotients;
//  - from a perturbed basis the component of eigenvector i in column j shrinks by λ_i/λ_j;
//  - Mousse with power_qr and eigh_every = 1 is Mousse with eigh, bit for bit; with
//    eigh_every = 0 it equals it until the second refresh, then its whitening operator
//    Q diag(s) Qᵀ converges to the exact one when the statistics settle;
//  - batched Cholesky QR (orthonormalize) gives Householder's Q, also ill-conditioned; stacked
//    power steps and Mousse / SOAP refreshes equal the same done one factor at a time, with
//    either QR, and the two QRs agree;
//  - a bf16 statistics GEMM is refused on the CPU.
#include "../backend/test_util.h"
#include "optim_test_util.h"
#include "optim/mousse.h"

using namespace mousse;
using namespace mousse::otest;

namespace {

using mousse::test::Buf;  // host storage with its tensor view (tests/backend/test_util.h)

// Random orthogonal d × d (QR of a Gaussian matrix).
Mat random_orthogonal(Ops& ops, int64_t d, std::mt19937_64& rng) {
  const Buf<double> g = test::randn(Shape{d, d}, rng);
  Buf<double> q(Shape{d, d});
  ops.qr_orthonormal(q.t, g.t);
  return q.v;
}

// a = V diag(lam) Vᵀ
Mat from_spectrum(const Mat& V, const std::vector<double>& lam) {
  const int64_t d = int64_t(lam.size());
  Mat a(size_t(d * d), 0.0);
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++)
      for (int64_t k = 0; k < d; k++)
        a[size_t(i * d + j)] += V[size_t(i * d + k)] * lam[size_t(k)] * V[size_t(j * d + k)];
  return a;
}

// |Vᵀ q| off the diagonal: the largest component of a wrong eigenvector in a column of q
// (V's columns ordered as q's).
double largest_mixing(const Mat& V, const Mat& q, int64_t d) {
  double worst = 0.0;
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) {
      if (i == j) continue;
      double c = 0.0;
      for (int64_t k = 0; k < d; k++) c += V[size_t(k * d + i)] * q[size_t(k * d + j)];
      worst = std::max(worst, std::abs(c));
    }
  return worst;
}

// A symmetric matrix with a random eigenbasis V and eigenvalues ratio^k, in descending
// (k = 0, 1, ...) or ascending (eigh's) column order.
struct Spectrum {
  Mat V, a;
  std::vector<double> lam;
};
Spectrum random_spectrum(Ops& ops, int64_t d, double ratio, bool ascending, std::mt19937_64& rng) {
  Spectrum s;
  s.V = random_orthogonal(ops, d, rng);
  for (int64_t k = 0; k < d; k++) s.lam.push_back(std::pow(ratio, double(ascending ? d - 1 - k : k)));
  s.a = from_spectrum(s.V, s.lam);
  return s;
}

// PowerQrScratch over host memory, for stacks of up to b [d, d] matrices (f64 bases).
struct HostPowerScratch {
  Buf<double> p, e, x, gram, est, inv_norm;
  Buf<int32_t> idx;
  PowerQrScratch s;
  HostPowerScratch(int64_t b, int64_t d)
      : p(Shape{b * d * d}), e(Shape{b * d * d}), x(Shape{b * d * d}), gram(Shape{b * d * d}),
        est(Shape{b * d}), inv_norm(Shape{b * d}), idx(Shape{b * d}) {
    s.cholesky = true;
    s.p = p.t;
    s.e = e.t;
    s.x = x.t;
    s.gram = gram.t;
    s.est = est.t;
    s.inv_norm = inv_norm.t;
    s.idx = idx.t;
  }
};

struct Step {
  Mat q;
  std::vector<int64_t> order;
};
Step run_step(Ops& ops, const Mat& q0, const Mat& a, int64_t d) {
  Buf<double> q(Shape{d, d}), A(Shape{d, d});
  HostPowerScratch scratch(1, d);
  q.v = q0;
  A.v = a;
  Step s;
  const PowerQrResult r = power_qr_step(ops, q.t, A.t, scratch.s);
  REQUIRE(r.order.size() == 1);
  CHECK(r.householder_fallbacks == 0);
  s.order = r.order[0];
  s.q = q.v;
  for (int64_t j = 0; j < d; j++) CHECK(scratch.idx.v[size_t(j)] == s.order[size_t(j)]);
  return s;
}

}  // namespace

TEST_CASE("power_qr_step: the eigenbasis is a fixed point, ordered largest first",
          "[optim][power_qr]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(301);
  const int64_t d = 9;
  const Spectrum sp = random_spectrum(*ops, d, 0.3, /*ascending=*/true, rng);
  const Mat &V = sp.V, &a = sp.a;
  const std::vector<double>& lam = sp.lam;
  const Step s = run_step(*ops, V, a, d);  // V in eigh's ascending order
  for (int64_t j = 0; j < d; j++) CHECK(s.order[size_t(j)] == d - 1 - j);
  // column j of the result is ± eigenvector order[j], and its Rayleigh quotient λ_order[j]
  Mat vs(size_t(d * d));
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) vs[size_t(i * d + j)] = V[size_t(i * d + s.order[size_t(j)])];
  CHECK(largest_mixing(vs, s.q, d) < 1e-12);
  Buf<double> q(Shape{d, d}), A(Shape{d, d}), aq(Shape{d, d}), r(Shape{d});
  q.v = s.q;
  A.v = a;
  ops->matmul(aq.t, A.t, false, q.t, false);
  ops->column_dots(r.t, q.t, aq.t);
  for (int64_t j = 0; j < d; j++)
    CHECK(r.v[size_t(j)] == Approx(lam[size_t(d - 1 - j)]).epsilon(1e-12));
}

TEST_CASE("power_qr_step: wrong-eigenvector components shrink by the eigenvalue ratio",
          "[optim][power_qr]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(302);
  const int64_t d = 8;
  const Spectrum sp = random_spectrum(*ops, d, 0.25, /*ascending=*/false, rng);
  const Mat &V = sp.V, &a = sp.a;
  // q0 = orth(V + 1e-3 · noise): a basis near V, columns in V's (descending) order
  Buf<double> g(Shape{d, d}), q0(Shape{d, d});
  const Mat noise = randn(d * d, rng, 1e-3);
  for (size_t i = 0; i < g.v.size(); i++) g.v[i] = V[i] + noise[i];
  ops->qr_orthonormal(q0.t, g.t);
  const double before = largest_mixing(V, q0.v, d);
  REQUIRE(before > 1e-5);
  Mat q = q0.v;
  for (int it = 0; it < 3; it++) q = run_step(*ops, q, a, d).q;
  // Each step multiplies the component of eigenvector i in column j (i > j) by λ_i/λ_j ≤ 1/4,
  // and the orthogonalisation makes the components above the diagonal follow (first order).
  const double after = largest_mixing(V, q, d);
  CHECK(after < before * std::pow(0.25, 3) * 4);
  for (int it = 0; it < 30; it++) q = run_step(*ops, q, a, d).q;
  CHECK(largest_mixing(V, q, d) < 1e-12);
}

namespace {

// max |(QᵀQ − I)_ij| and max |(QᵀE)_ij| below the diagonal relative to max |E_ij|, of slice k
// of [b, d, d] stacks: q is the orthonormal factor of e's QR when both are ~round-off.
struct QrCheck {
  double orthogonality = 0.0, triangularity = 0.0, min_diag = 1e300;
};
QrCheck check_qr(const Mat& q, const Mat& e, int64_t k, int64_t d) {
  QrCheck c;
  double emax = 0.0;
  for (int64_t i = 0; i < d * d; i++) emax = std::max(emax, std::abs(e[size_t(k * d * d + i)]));
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) {
      double qq = 0.0, qe = 0.0;
      for (int64_t l = 0; l < d; l++) {
        const double qli = q[size_t(k * d * d + l * d + i)];
        qq += qli * q[size_t(k * d * d + l * d + j)];
        qe += qli * e[size_t(k * d * d + l * d + j)];
      }
      c.orthogonality = std::max(c.orthogonality, std::abs(qq - (i == j ? 1.0 : 0.0)));
      if (i > j) c.triangularity = std::max(c.triangularity, std::abs(qe) / emax);
      if (i == j) c.min_diag = std::min(c.min_diag, qe);
    }
  return c;
}

// b slices U_k diag(σ) V_kᵀ with σ_i = cond^(−i/(d−1)), columns then scaled by 10^(±3).
Buf<double> conditioned_stack(Ops& ops, int64_t b, int64_t d, double cond,
                              std::mt19937_64& rng) {
  Buf<double> e(Shape{b, d, d});
  for (int64_t k = 0; k < b; k++) {
    const Mat U = random_orthogonal(ops, d, rng), V = random_orthogonal(ops, d, rng);
    std::uniform_real_distribution<double> expo(-3.0, 3.0);
    std::vector<double> col(static_cast<size_t>(d));
    for (auto& c : col) c = std::pow(10.0, expo(rng));
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++) {
        double v = 0.0;
        for (int64_t l = 0; l < d; l++)
          v += U[size_t(i * d + l)] * std::pow(cond, -double(l) / double(d - 1)) * V[size_t(j * d + l)];
        e[size_t(k * d * d + i * d + j)] = v * col[size_t(j)];
      }
  }
  return e;
}

}  // namespace

TEST_CASE("orthonormalize (Cholesky QR): Householder's Q, batched, even when ill-conditioned",
          "[optim][power_qr]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(305);
  const int64_t b = 3, d = 24;
  HostPowerScratch scratch(b, d);
  SECTION("well conditioned: the same Q as qr_orthonormal, slice by slice") {
    Buf<double> e = conditioned_stack(*ops, b, d, 1e2, rng), q(Shape{b, d, d});
    CHECK(orthonormalize(*ops, q.t, e.t, scratch.s) == 0);
    for (int64_t k = 0; k < b; k++) {
      Buf<double> ek(Shape{d, d}), qk(Shape{d, d});
      ek.v.assign(e.v.begin() + k * d * d, e.v.begin() + (k + 1) * d * d);
      ops->qr_orthonormal(qk.t, ek.t);
      CHECK(rel_err(Mat(q.v.begin() + k * d * d, q.v.begin() + (k + 1) * d * d), qk.v) < 1e-12);
    }
  }
  SECTION("condition numbers 1e8 and 1e13 with columns scaled over 6 decades: no fallback") {
    for (double cond : {1e8, 1e13}) {
      Buf<double> e = conditioned_stack(*ops, b, d, cond, rng), q(Shape{b, d, d});
      CHECK(orthonormalize(*ops, q.t, e.t, scratch.s) == 0);
      for (int64_t k = 0; k < b; k++) {
        const QrCheck c = check_qr(q.v, e.v, k, d);
        INFO("cond " << cond << " slice " << k);
        CHECK(c.orthogonality < 1e-14);
        CHECK(c.triangularity < 1e-14);
        CHECK(c.min_diag > 0.0);
      }
    }
  }
  SECTION("a rank-deficient or non-finite slice is redone with Householder QR, alone") {
    Buf<double> e = conditioned_stack(*ops, b, d, 1e2, rng), q(Shape{b, d, d});
    for (int64_t i = 0; i < d; i++) e.v[size_t(d * d + i * d + 5)] = 0.0;  // slice 1: a zero column
    e.v[size_t(2 * d * d + 7)] = std::numeric_limits<double>::infinity();  // slice 2
    CHECK(orthonormalize(*ops, q.t, e.t, scratch.s) == 2);
    const QrCheck c0 = check_qr(q.v, e.v, 0, d);
    CHECK(c0.orthogonality < 1e-14);
    Buf<double> e1(Shape{d, d}), q1(Shape{d, d});
    e1.v.assign(e.v.begin() + d * d, e.v.begin() + 2 * d * d);
    ops->qr_orthonormal(q1.t, e1.t);
    CHECK(Mat(q.v.begin() + d * d, q.v.begin() + 2 * d * d) == q1.v);  // Householder's, exactly
    CHECK(!all_finite(Mat(q.v.begin() + 2 * d * d, q.v.end())));       // not finite: visible
  }
  SECTION("f32 bases, as on the GPU (planned through the arena, f64 inside): the same fallbacks") {
    // test_cuda_optim runs the same case on both backends and compares
    const int64_t n = 64;
    int fallbacks = -1;
    const std::vector<double> q = orthonormalize_fallback_case(*ops, n, 77, fallbacks);
    CHECK(fallbacks == 2);
    for (int64_t k : {0, 1}) {
      INFO("slice " << k);
      CHECK(orthogonality_error(q, k, n) < 1e-5);
    }
    CHECK(!all_finite(Mat(q.begin() + 2 * n * n, q.end())));
  }
  SECTION("duplicate columns (rank deficient up to round-off): a valid QR either way") {
    // The shifted first pass may carry such a slice through (or fail it into the fallback):
    // whichever path, Q is orthonormal and Qᵀe upper triangular.
    Buf<double> e = conditioned_stack(*ops, b, d, 1e2, rng), q(Shape{b, d, d});
    for (int64_t k = 0; k < b; k++)  // column 5 = column 2, in every slice
      for (int64_t i = 0; i < d; i++)
        e.v[size_t(k * d * d + i * d + 5)] = e.v[size_t(k * d * d + i * d + 2)];
    const int fallbacks = orthonormalize(*ops, q.t, e.t, scratch.s);
    CHECK(fallbacks >= 0);
    CHECK(fallbacks <= b);
    for (int64_t k = 0; k < b; k++) {
      const QrCheck c = check_qr(q.v, e.v, k, d);
      CHECK(c.orthogonality < 1e-14);
      CHECK(c.triangularity < 1e-14);
    }
  }
  SECTION("f32 bases: the f64 working copy gives Householder's f32 Q to f32 round-off") {
    Buf<double> e = conditioned_stack(*ops, b, d, 1e2, rng), q(Shape{b, d, d});
    std::vector<float> ef(e.v.begin(), e.v.end()), qf(ef.size());
    Tensor et = e.t, qt = q.t;
    et.dtype = qt.dtype = DType::f32;
    et.data = ef.data();
    qt.data = qf.data();
    CHECK(orthonormalize(*ops, qt, et, scratch.s) == 0);
    ops->qr_orthonormal(q.t.slice(0, Shape{d, d}), e.t.slice(0, Shape{d, d}));
    CHECK(rel_err(Mat(qf.begin(), qf.begin() + d * d), Mat(q.v.begin(), q.v.begin() + d * d)) < 1e-5);
  }
}

TEST_CASE("power_qr_step on a stack equals the step on each slice", "[optim][power_qr]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(306);
  const int64_t b = 3, d = 10;
  Buf<double> q(Shape{b, d, d}), a(Shape{b, d, d});
  std::vector<Step> single;
  for (int64_t k = 0; k < b; k++) {
    const Spectrum sp = random_spectrum(*ops, d, 0.5, /*ascending=*/true, rng);
    Buf<double> g(Shape{d, d}), q0(Shape{d, d});
    const Mat noise = randn(d * d, rng, 1e-2);
    for (size_t i = 0; i < g.v.size(); i++) g.v[i] = sp.V[i] + noise[i];
    ops->qr_orthonormal(q0.t, g.t);
    std::copy(q0.v.begin(), q0.v.end(), q.v.begin() + k * d * d);
    std::copy(sp.a.begin(), sp.a.end(), a.v.begin() + k * d * d);
    single.push_back(run_step(*ops, q0.v, sp.a, d));
  }
  HostPowerScratch scratch(b, d);
  const PowerQrResult r = power_qr_step(*ops, q.t, a.t, scratch.s);
  REQUIRE(r.order.size() == size_t(b));
  CHECK(r.householder_fallbacks == 0);
  for (int64_t k = 0; k < b; k++) {
    CHECK(r.order[size_t(k)] == single[size_t(k)].order);
    CHECK(rel_err(Mat(q.v.begin() + k * d * d, q.v.begin() + (k + 1) * d * d), single[size_t(k)].q) < 1e-14);
  }
}

namespace {

json power_cfg(const std::string& refresh, int64_t eigh_every = -1, const std::string& qr = "") {
  json c = {{"type", "mousse"},     {"momentum", 0.9},    {"beta_pc", 0.5},
            {"eps", 1e-5},          {"alpha", 0.25},      {"update_interval", 3},
            {"whiten", "both"},     {"orthogonalizer", "ns5"}, {"weight_decay", 0.01},
            {"refresh", refresh}};
  if (eigh_every >= 0) c["eigh_every"] = eigh_every;
  if (!qr.empty()) c["qr"] = qr;
  return c;
}

// Q diag(s) Qᵀ of one factor from a rig's state ("L" or "R").
Mat whitening(Rig& r, const std::string& side, int64_t d) {
  Mat q, s;
  for (auto& kv : r.state()) {
    if (kv.first == "mousse.Q" + side + ".blocks.0.w") q = kv.second;
    if (kv.first == "mousse.s" + side + ".blocks.0.w") s = kv.second;
  }
  REQUIRE(q.size() == size_t(d * d));
  REQUIRE(s.size() == size_t(d));
  Mat p(size_t(d * d), 0.0);
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++)
      for (int64_t k = 0; k < d; k++)
        p[size_t(i * d + j)] += q[size_t(i * d + k)] * s[size_t(k)] * q[size_t(j * d + k)];
  return p;
}

}  // namespace

TEST_CASE("Mousse power_qr: eigh_every = 1 is the eigh refresh, bit for bit", "[optim][power_qr]") {
  const Shapes shapes = {{6, 10}, {9, 5}};
  Rig a(power_cfg("eigh"), shapes), b(power_cfg("power_qr", 1), shapes);
  std::mt19937_64 rng(303);
  same_random_weights(a, b, rng);
  for (int t = 0; t < 10; t++) {
    std::vector<Mat> g = {randn(60, rng), randn(45, rng)};
    a.step(g, 0.02);
    b.step(g, 0.02);
    for (size_t i = 0; i < shapes.size(); i++) CHECK(a.w(i) == b.w(i));
  }
}

TEST_CASE("Mousse power_qr: exact first refresh, then converges to the exact whitening",
          "[optim][power_qr]") {
  // Steps 0-2: gradient G0 (the first refresh, an exact eigh, sees only it). From step 3 on a
  // fixed G1 with well-separated singular values, so that (β_pc = 0.5) the statistics settle on
  // G1's and one power step per refresh has an exact target to converge to.
  const int64_t m = 6, n = 10;
  const Shapes shapes = {{m, n}};
  Rig exact(power_cfg("eigh"), shapes), power(power_cfg("power_qr", 0), shapes);
  std::mt19937_64 rng(304);
  same_random_weights(exact, power, rng);
  const Mat g0 = randn(m * n, rng);
  Mat g1(size_t(m * n), 0.0);
  {
    const Mat U = random_orthogonal(*exact.owned_ops, m, rng);
    const Mat W = random_orthogonal(*exact.owned_ops, n, rng);
    for (int64_t k = 0; k < m; k++)  // σ_k = 4·2^(−k): eigenvalue ratios of 1/4
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
          g1[size_t(i * n + j)] += U[size_t(i * m + k)] * 4.0 * std::pow(0.5, double(k)) *
                                   W[size_t(j * n + k)];
  }
  std::vector<double> err_l;
  for (int t = 0; t < 60; t++) {
    const Mat& g = t < 3 ? g0 : g1;
    exact.step({g}, 0.02);
    power.step({g}, 0.02);
    if (t < 3) {  // before the second refresh both ran the same exact eigh
      CHECK(exact.w() == power.w());
      continue;
    }
    if (t % 3 != 0) continue;  // a refresh step
    const Mat pe = whitening(exact, "L", m), pp = whitening(power, "L", m);
    err_l.push_back(rel_err(pp, pe));
    if (t == 57) CHECK(rel_err(whitening(power, "R", n), whitening(exact, "R", n)) < 1e-9);
  }
  INFO("L whitening error per refresh: " << json(err_l).dump());
  CHECK(err_l.front() > 1e-4);  // the statistics moved: one step is not yet exact
  CHECK(err_l.back() < 1e-9);
  auto* mo = dynamic_cast<Mousse*>(power.opt.get());
  REQUIRE(mo);
  CHECK(mo->eigh_failures() == 0);
}

TEST_CASE("Mousse and SOAP: bf16 statistics need the CUDA backend", "[optim][power_qr]") {
  for (json c : {power_cfg("eigh"), json{{"type", "soap"}}}) {
    c["stats_dtype"] = "bf16";
    CHECK_THROWS_WITH(Rig(c, {{4, 6}}, DType::f32),
                      Catch::Contains("stats_dtype") && Catch::Contains("CUDA"));
  }
}

TEST_CASE("Mousse and SOAP: TF32 statistics (stats_dtype)", "[optim]") {
  // "auto" is "param" on the CPU (TF32 on CUDA); "tf32" is emulated on the CPU (Ops::matmul_tf32,
  // whose rounding test_cpu_gemm checks): the same optimizer with statistics whose GEMM inputs
  // lost their last 13 mantissa bits. So: auto == param bit for bit, and tf32 moves the
  // statistics by ~2^-11 relative and the update by little, but by something. Square gradients
  // with a diagonal shift: both factors full rank and well conditioned from the first step
  // (SOAP's Adam in an eigenbasis is not invariant to rotations inside a degenerate eigenspace,
  // so a rank-deficient factor would let round-off choose the update).
  const std::string type = GENERATE(as<std::string>{}, "mousse", "soap");
  INFO(type);
  const Shapes shapes = {{12, 12}, {20, 20}};
  auto cfg = [&](const char* stats) {
    json c = {{"type", type}, {"update_interval", 2}, {"stats_dtype", stats}};
    if (type == "mousse") c["eps"] = 1e-3;
    return c;
  };
  CHECK_THROWS_WITH(Rig(cfg("tf32"), shapes, DType::f64),
                    Catch::Contains("stats_dtype") && Catch::Contains("f32"));
  Rig exact(cfg("param"), shapes, DType::f32), automatic(cfg("auto"), shapes, DType::f32),
      tf32(cfg("tf32"), shapes, DType::f32);
  std::mt19937_64 rng(4242);
  const Mat w0a = randn(12 * 12, rng, 0.05), w0b = randn(20 * 20, rng, 0.05);
  for (Rig* r : {&exact, &automatic, &tf32}) {
    r->set(r->params[0].weight, w0a);
    r->set(r->params[1].weight, w0b);
  }
  for (int t = 0; t < 5; t++) {
    std::vector<Mat> g = {randn(12 * 12, rng, 1e-2), randn(20 * 20, rng, 1e-2)};
    for (Mat& x : g) {
      const int64_t n = int64_t(std::lround(std::sqrt(double(x.size()))));
      for (int64_t k = 0; k < n; k++) x[size_t(k * n + k)] += 2e-2 * std::sqrt(double(n));
    }
    for (Rig* r : {&exact, &automatic, &tf32}) r->step(g, 0.02);
  }
  const std::string stat = type + ".L.blocks.0.w";
  Mat le, lt;
  for (auto& [name, v] : exact.state())
    if (name == stat) le = v;
  for (auto& [name, v] : tf32.state())
    if (name == stat) lt = v;
  REQUIRE(le.size() == 12 * 12);
  REQUIRE(lt.size() == 12 * 12);
  const double stat_moved = rel_err(lt, le);
  INFO("statistics moved by " << stat_moved);
  CHECK(stat_moved > 1e-6);
  CHECK(stat_moved < 2e-3);
  for (size_t i = 0; i < shapes.size(); i++) {
    CHECK(automatic.w(i) == exact.w(i));
    Mat de = exact.w(i), dt = tf32.w(i);
    const Mat& w0 = i == 0 ? w0a : w0b;
    for (size_t k = 0; k < de.size(); k++) {
      de[k] -= w0[k];
      dt[k] -= w0[k];
    }
    const double update_moved = rel_err(dt, de);
    INFO("matrix " << i << ": update moved by " << update_moved);
    CHECK(update_moved > 0.0);
    // SOAP's first Adam steps are close to sign(G') in the eigenbasis: a component of G' near 0
    // may flip sign under any perturbation of the basis, so its update moves by more (measured:
    // 6% for the 12×12 matrix). A wrong statistic (say, a transposed product) would move it by
    // ~100%.
    CHECK(update_moved < (type == "soap" ? 0.2 : 1e-2));
  }
}

TEST_CASE("Mousse and SOAP: factors refreshed in stacks equal factors refreshed alone",
          "[optim][power_qr]") {
  // Three matrices of one shape: their 6×6 and 10×10 factors go through power_qr_step in stacks
  // of three. Each matrix's update is independent of the others, so every one must match a rig
  // that holds it alone (where every stack has one factor). With either QR method, and the two
  // methods agree.
  const std::string type = GENERATE(as<std::string>{}, "mousse", "soap");
  const std::string qr = GENERATE(as<std::string>{}, "cholesky", "householder");
  INFO(type << ", qr " << qr);
  auto cfg = [&](const std::string& q) {
    return type == "mousse" ? power_cfg("power_qr", 0, q)
                            : json{{"type", "soap"}, {"update_interval", 3}, {"qr", q}};
  };
  const Shapes three = {{6, 10}, {6, 10}, {6, 10}};
  Rig together(cfg(qr), three);
  Rig other(cfg(qr == "cholesky" ? "householder" : "cholesky"), three);
  std::vector<std::unique_ptr<Rig>> alone;
  std::mt19937_64 rng(307);
  for (size_t i = 0; i < three.size(); i++) {
    alone.push_back(std::make_unique<Rig>(cfg(qr), Shapes{three[i]}));
    const Mat w0 = randn(60, rng);
    together.set(together.params[i].weight, w0);
    other.set(other.params[i].weight, w0);
    alone[i]->set(alone[i]->params[0].weight, w0);
  }
  // Mousse refreshes at steps 0 (eigh), 3, 6, 9, 12 (power steps); SOAP at Adam steps 3, 6, 9, 12
  for (int t = 0; t < 13; t++) {
    std::vector<Mat> g;
    for (size_t i = 0; i < three.size(); i++) g.push_back(randn(60, rng));
    together.step(g, 0.02, /*diagnostics=*/t == 12);
    other.step(g, 0.02);
    for (size_t i = 0; i < three.size(); i++) alone[i]->step({g[i]}, 0.02);
  }
  for (size_t i = 0; i < three.size(); i++) {
    CHECK(rel_err(together.w(i), alone[i]->w()) < 1e-13);
    CHECK(rel_err(together.w(i), other.w(i)) < 1e-10);
  }
  const json d = together.opt->diagnostics();
  CHECK(d.at("eigh_failures") == 0);
  CHECK(d.at("cholesky_qr_failures") == 0);
}
