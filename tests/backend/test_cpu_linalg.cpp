// CPU backend linear algebra: eigh, qr_orthonormal, scale_rows_cols, pow_clamped,
// add_to_diagonal, trace, transpose, gather_rows / gather_columns, column_dots, cholesky_batched,
// solve_upper_right_batched.
#include <cmath>
#include <limits>
#include <random>

#include "test_util.h"

using namespace mousse;
using namespace mousse::test;
using Catch::Matchers::Contains;

namespace {

// Naive product of row-major matrices [m, k] @ [k, n], either operand optionally transposed.
std::vector<double> mm(const std::vector<double>& a, bool ta, const std::vector<double>& b,
                       bool tb, int64_t m, int64_t k, int64_t n) {
  std::vector<double> c(size_t(m * n));
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t l = 0; l < k; l++)
        s += (ta ? a[size_t(l * m + i)] : a[size_t(i * k + l)]) *
             (tb ? b[size_t(j * k + l)] : b[size_t(l * n + j)]);
      c[size_t(i * n + j)] = s;
    }
  return c;
}

std::vector<double> eye(int64_t n) {
  std::vector<double> I(size_t(n * n));
  for (int64_t i = 0; i < n; i++) I[size_t(i * n + i)] = 1.0;
  return I;
}

// A random symmetric matrix (a Gram matrix plus a symmetric perturbation: mixed-sign spectrum).
Buf<double> random_symmetric(int64_t n, std::mt19937_64& rng) {
  auto g = randn(Shape{n, n}, rng);
  Buf<double> a(Shape{n, n});
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) a[size_t(i * n + j)] = g[size_t(i * n + j)] + g[size_t(j * n + i)];
  return a;
}

}  // namespace

TEST_CASE("cpu eigh: A Q = Q Λ, QᵀQ = I, ascending, lower triangle only, f32", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(71);
  const int64_t n = 12;
  auto a = random_symmetric(n, rng);
  const auto a_sym = a.v;
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = i + 1; j < n; j++) a[size_t(i * n + j)] = 1e6;  // upper triangle: ignored
  const auto a_before = a.v;
  Buf<double> q(Shape{n, n}), w(Shape{n});
  REQUIRE(ops->eigh(q, w, a) == 0);
  CHECK(a.v == a_before);  // a unchanged
  for (int64_t i = 1; i < n; i++) CHECK(w[size_t(i - 1)] <= w[size_t(i)]);
  // eigenvector j in column j: A Q = Q diag(w)
  auto aq = mm(a_sym, false, q.v, false, n, n, n);
  std::vector<double> ql(q.v);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) ql[size_t(i * n + j)] *= w[size_t(j)];
  CHECK(max_abs_diff(aq, ql) < 1e-12);
  CHECK(max_abs_diff(mm(q.v, true, q.v, false, n, n, n), eye(n)) < 1e-13);

  auto af = cast<float>(a);
  Buf<float> qf(Shape{n, n}), wf(Shape{n});
  REQUIRE(ops->eigh(qf, wf, af) == 0);
  CHECK(rel_err(wf.v, w.v) < kF32Tol);
  std::vector<double> qfd(qf.v.begin(), qf.v.end());
  CHECK(max_abs_diff(mm(qfd, true, qfd, false, n, n, n), eye(n)) < 1e-5);
}

TEST_CASE("cpu eigh: known spectrum, non-finite input returns nonzero", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  Buf<double> a(Shape{3, 3}), q(Shape{3, 3}), w(Shape{3});
  // diag(3, 1, 2): eigenvalues 1, 2, 3 with eigenvectors e1, e2, e0 (up to sign)
  a[0] = 3, a[4] = 1, a[8] = 2;
  REQUIRE(ops->eigh(q, w, a) == 0);
  CHECK(w.v == std::vector<double>{1, 2, 3});
  CHECK(std::fabs(q[1 * 3 + 0]) == 1.0);  // column 0 = ±e1
  CHECK(std::fabs(q[2 * 3 + 1]) == 1.0);  // column 1 = ±e2
  CHECK(std::fabs(q[0 * 3 + 2]) == 1.0);  // column 2 = ±e0

  a[3] = std::numeric_limits<double>::quiet_NaN();
  CHECK(ops->eigh(q, w, a) != 0);
  a[3] = std::numeric_limits<double>::infinity();
  CHECK(ops->eigh(q, w, a) != 0);
  Buf<float> af(Shape{3, 3}), qf(Shape{3, 3}), wf(Shape{3});
  af[8] = std::numeric_limits<float>::quiet_NaN();
  CHECK(ops->eigh(qf, wf, af) != 0);

  Buf<double> rect(Shape{3, 4}), w4(Shape{4});
  CHECK_THROWS_WITH(ops->eigh(q, w, rect), Contains("eigh") && Contains("square"));
  CHECK_THROWS_WITH(ops->eigh(q, w4, a), Contains("eigenvalues") && Contains("[4]"));
}

// LAPACKE_ssyevd's workspace query hands lwork = 1 + 6n + 2n² back in a float, which rounds it
// down for n >= 2897, and LAPACK then rejects its own workspace (seen at n = 3072, the mlp
// factor of the 162m model). eigh sizes the workspace itself; checked just above the threshold
// on a matrix with a known spectrum: diag(1..n) + a rank-one term.
TEST_CASE("cpu eigh f32 at n = 2900 (above LAPACKE's float workspace query)", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  const int64_t n = 2900;
  std::mt19937_64 rng(72);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> u(static_cast<size_t>(n));
  for (double& x : u) x = double(float(nd(rng) / std::sqrt(double(n))));
  Buf<float> a(Shape{n, n}), q(Shape{n, n}), w(Shape{n});
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++)
      a[size_t(i * n + j)] = float((i == j ? double(i + 1) : 0.0) + u[size_t(i)] * u[size_t(j)]);
  REQUIRE(ops->eigh(q, w, a) == 0);
  // trace = Σλ, and a few residuals ‖A q_j − λ_j q_j‖ (O(n²) each).
  double trace = 0, sum = 0;
  for (int64_t i = 0; i < n; i++) trace += a[size_t(i * n + i)], sum += w[size_t(i)];
  CHECK(std::fabs(sum - trace) < 1e-4 * trace);
  for (int64_t j : {int64_t(0), n / 2, n - 1}) {
    double res = 0;
    for (int64_t i = 0; i < n; i++) {
      double av = 0;
      for (int64_t k = 0; k < n; k++) av += double(a[size_t(i * n + k)]) * q[size_t(k * n + j)];
      const double r = av - double(w[size_t(j)]) * q[size_t(i * n + j)];
      res += r * r;
    }
    CHECK(std::sqrt(res) < 1e-3 * n);
  }
}

TEST_CASE("cpu qr_orthonormal: QᵀQ = I, A = QR with R upper triangular, diag(R) >= 0",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(72);
  for (auto mn : {std::pair<int64_t, int64_t>{9, 5}, {6, 6}}) {
    const int64_t m = mn.first, n = mn.second;
    DYNAMIC_SECTION(m << "x" << n) {
      auto a = randn(Shape{m, n}, rng);
      Buf<double> q(Shape{m, n});
      ops->qr_orthonormal(q, a);
      CHECK(max_abs_diff(mm(q.v, true, q.v, false, n, m, n), eye(n)) < 1e-13);
      auto r = mm(q.v, true, a.v, false, n, m, n);  // R = Qᵀ A
      for (int64_t i = 0; i < n; i++) {
        CHECK(r[size_t(i * n + i)] > 0.0);
        for (int64_t j = 0; j < i; j++) CHECK(std::fabs(r[size_t(i * n + j)]) < 1e-13);
      }
      CHECK(max_abs_diff(mm(q.v, false, r, false, m, n, n), a.v) < 1e-13);  // A = Q R

      auto af = cast<float>(a);
      Buf<float> qf(Shape{m, n});
      ops->qr_orthonormal(qf, af);
      CHECK(rel_err(qf.v, q.v) < kF32Tol);  // the sign convention makes Q unique

      auto inplace = a;  // q may alias a
      ops->qr_orthonormal(inplace, inplace);
      CHECK(inplace.v == q.v);
    }
  }
  Buf<double> wide(Shape{3, 5}), qw(Shape{3, 5});
  CHECK_THROWS_WITH(ops->qr_orthonormal(qw, wide), Contains("qr_orthonormal") && Contains("m >= n"));
  auto bad = randn(Shape{6, 4}, rng);  // non-finite input: a non-finite q, no error
  bad[5] = std::numeric_limits<double>::infinity();
  Buf<double> qb(Shape{6, 4});
  CHECK_NOTHROW(ops->qr_orthonormal(qb, bad));
  CHECK(std::isnan(qb[0]));
}

TEST_CASE("cpu scale_rows_cols, pow_clamped, add_to_diagonal, trace", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(73);
  const int64_t R = 5, C = 7;
  auto x = randn(Shape{R, C}, rng), rs = randn(Shape{R}, rng), cs = randn(Shape{C}, rng);
  Buf<double> y(Shape{R, C});
  ops->scale_rows_cols(y, x, rs, cs);
  for (int64_t i = 0; i < R; i++)
    for (int64_t j = 0; j < C; j++)
      CHECK(y[size_t(i * C + j)] ==
            Approx(x[size_t(i * C + j)] * rs[size_t(i)] * cs[size_t(j)]).epsilon(1e-15));
  Buf<float> yf(Shape{R, C});
  ops->scale_rows_cols(yf, cast<float>(x), cast<float>(rs), cast<float>(cs));
  CHECK(rel_err(yf.v, y.v) < kF32Tol);
  ops->scale_rows_cols(y, x, rs, Tensor{});  // undefined scale = 1
  for (int64_t j = 0; j < C; j++) CHECK(y[size_t(2 * C + j)] == x[size_t(2 * C + j)] * rs[2]);
  auto z = x;  // out may alias inp
  ops->scale_rows_cols(z, z, Tensor{}, cs);
  for (int64_t i = 0; i < R; i++) CHECK(z[size_t(i * C + 3)] == x[size_t(i * C + 3)] * cs[3]);
  Buf<double> cs_bad(Shape{C + 1});
  CHECK_THROWS_WITH(ops->scale_rows_cols(y, x, rs, cs_bad),
                    Contains("scale_rows_cols") && Contains("col_scale"));
  {  // a stack of 3 matrices [3, R, C], each with its own row and column scales
    auto xs = randn(Shape{3, R, C}, rng), rss = randn(Shape{3, R}, rng),
         css = randn(Shape{3, C}, rng);
    Buf<double> ys(Shape{3, R, C});
    ops->scale_rows_cols(ys, xs, rss, css);
    for (int64_t k = 0; k < 3; k++)
      for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++)
          CHECK(ys[size_t((k * R + i) * C + j)] ==
                Approx(xs[size_t((k * R + i) * C + j)] * rss[size_t(k * R + i)] *
                       css[size_t(k * C + j)]).epsilon(1e-15));
    CHECK_THROWS_WITH(ops->scale_rows_cols(ys, xs, rss, cs),  // one matrix's column scales
                      Contains("col_scale") && Contains("each matrix"));
  }

  auto lam = randn(Shape{R * C}, rng);  // some below the floor, some negative
  Buf<double> p(Shape{R * C});
  ops->pow_clamped(p, lam, -0.125, 1e-2);
  for (size_t i = 0; i < p.size(); i++)
    CHECK(p[i] == Approx(std::pow(std::max(lam[i], 1e-2), -0.125)).epsilon(1e-15));
  Buf<float> pf(Shape{R * C});
  ops->pow_clamped(pf, cast<float>(lam), -0.125, 1e-2);
  CHECK(rel_err(pf.v, p.v) < kF32Tol);

  auto sq = randn(Shape{6, 6}, rng);
  double tr = 0;
  for (int i = 0; i < 6; i++) tr += sq[size_t(i * 7)];
  CHECK(ops->trace(sq) == Approx(tr).epsilon(1e-15));
  auto sq0 = sq;
  ops->add_to_diagonal(sq, 0.5);
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 6; j++)
      CHECK(sq[size_t(i * 6 + j)] == sq0[size_t(i * 6 + j)] + (i == j ? 0.5 : 0.0));
  CHECK(ops->trace(sq) == Approx(tr + 3.0).epsilon(1e-15));
  CHECK_THROWS_WITH(ops->trace(x), Contains("trace") && Contains("square"));
}

TEST_CASE("cpu transpose and gathers", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(74);
  const int64_t m = 37, n = 45;  // not multiples of the tile size
  auto x = randn(Shape{m, n}, rng);
  Buf<double> xt(Shape{n, m});
  ops->transpose(xt, x);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) CHECK(xt[size_t(j * m + i)] == x[size_t(i * n + j)]);
  Buf<float> xtf(Shape{n, m});
  ops->transpose(xtf, cast<float>(x));
  CHECK(rel_err(xtf.v, xt.v) < kF32Tol);
  CHECK_THROWS_WITH(ops->transpose(x, x), Contains("transpose") && Contains("[37, 45]"));

  Buf<int32_t> cols(Shape{4});
  cols[0] = 44, cols[1] = 0, cols[2] = 7, cols[3] = 7;
  Buf<double> gc(Shape{m, 4});
  ops->gather_columns(gc, x, cols);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < 4; j++) CHECK(gc[size_t(i * 4 + j)] == x[size_t(i * n + cols[size_t(j)])]);
  Buf<float> gcf(Shape{m, 4});
  ops->gather_columns(gcf, cast<float>(x), cols);
  CHECK(rel_err(gcf.v, gc.v) < kF32Tol);
  Buf<int32_t> rows(Shape{3});
  rows[0] = 36, rows[1] = 2, rows[2] = 0;
  Buf<double> gr(Shape{3, n});
  ops->gather_rows(gr, x, rows);
  for (int64_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < n; j++) CHECK(gr[size_t(i * n + j)] == x[size_t(rows[size_t(i)] * n + j)]);
  Buf<float> grf(Shape{3, n});
  ops->gather_rows(grf, cast<float>(x), rows);
  CHECK(rel_err(grf.v, gr.v) < kF32Tol);
  rows[1] = 37;
  CHECK_THROWS_WITH(ops->gather_rows(gr, x, rows), Contains("gather_rows") && Contains("37"));
  Buf<double> gc_bad(Shape{m, 5});
  CHECK_THROWS_WITH(ops->gather_columns(gc_bad, x, cols), Contains("gather_columns"));
}

TEST_CASE("cpu column_dots", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(75);
  const int64_t m = 29, n = 41;
  auto a = randn(Shape{m, n}, rng), b = randn(Shape{m, n}, rng);
  std::vector<double> want(size_t(n), 0.0);
  for (int64_t j = 0; j < n; j++)
    for (int64_t i = 0; i < m; i++) want[size_t(j)] += a[size_t(i * n + j)] * b[size_t(i * n + j)];
  Buf<double> out(Shape{n});
  ops->column_dots(out, a, b);
  CHECK(rel_err(out.v, want) < 1e-14);
  Buf<float> outf(Shape{n});
  ops->column_dots(outf, cast<float>(a), cast<float>(b));
  CHECK(rel_err(outf.v, want) < kF32Tol);
  Buf<double> bad(Shape{n - 1});
  CHECK_THROWS_WITH(ops->column_dots(bad, a, b), Contains("column_dots") && Contains("41"));
  Buf<double> bt(Shape{n, m});
  CHECK_THROWS_WITH(ops->column_dots(out, a, bt), Contains("column_dots") && Contains("shape"));
}

TEST_CASE("cpu device scalars: sum_squares_batched, trace_to, scale_by_ratio", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(91);
  const int64_t B = 3, R = 4, C = 5;
  auto x = randn(Shape{B, R, C}, rng);
  Buf<double> ss(Shape{B});
  ops->sum_squares_batched(ss, x);
  for (int64_t b = 0; b < B; b++) {
    double s = 0;
    for (int64_t i = 0; i < R * C; i++) s += x[size_t(b * R * C + i)] * x[size_t(b * R * C + i)];
    CHECK(ss[size_t(b)] == Approx(s).epsilon(1e-14));
  }
  Buf<double> one(Shape{1});  // one slice: exactly sum_squares()
  ops->sum_squares_batched(one, x);
  CHECK(one[0] == ops->sum_squares(x));
  Buf<float> ssf(Shape{B});
  ops->sum_squares_batched(ssf, cast<float>(x));
  CHECK(rel_err(ssf.v, ss.v) < kF32Tol);
  Buf<double> bad(Shape{7});
  CHECK_THROWS_WITH(ops->sum_squares_batched(bad, x), Contains("sum_squares_batched"));

  auto a = randn(Shape{C, C}, rng);
  Buf<double> tr(Shape{1});
  ops->trace_to(tr, a);
  CHECK(tr[0] == ops->trace(a));

  // x_b *= c · sqrt(num_b) / (alpha · sqrt(den_b) + eps), power 0.5
  Buf<double> num(Shape{B}), den(Shape{B});
  num.v = {4.0, 9.0, 1.0};
  den.v = {1.0, 0.0, 16.0};
  auto y = x;
  ops->scale_by_ratio(y, num, den, 0.5, 2.0, 3.0, 0.5);
  const double f[3] = {2.0 * 2.0 / (3.0 + 0.5), 2.0 * 3.0 / 0.5, 2.0 * 1.0 / (12.0 + 0.5)};
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < R * C; i++)
      CHECK(y[size_t(b * R * C + i)] == Approx(x[size_t(b * R * C + i)] * f[b]).epsilon(1e-14));
  // power 1, no numerator; a zero denominator leaves the slice unchanged
  y = x;
  den.v = {2.0, 0.0, -1.0};
  ops->scale_by_ratio(y, Tensor{}, den, 1.0, 4.0, 1.0, 0.0);
  for (int64_t i = 0; i < R * C; i++) {
    CHECK(y[size_t(i)] == Approx(x[size_t(i)] * 2.0).epsilon(1e-14));
    CHECK(y[size_t(R * C + i)] == x[size_t(R * C + i)]);
    CHECK(y[size_t(2 * R * C + i)] == x[size_t(2 * R * C + i)]);
  }
}

TEST_CASE("cpu eigh_batched: each slice as eigh, a failed slice reported alone", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(92);
  const int64_t B = 3, n = 6;
  Buf<double> a(Shape{B, n, n}), v(Shape{B, n, n}), w(Shape{B, n});
  for (int64_t b = 0; b < B; b++) {
    auto s = random_symmetric(n, rng);
    std::copy(s.v.begin(), s.v.end(), a.v.begin() + b * n * n);
  }
  a[size_t(n * n + 2)] = std::numeric_limits<double>::quiet_NaN();  // slice 1, lower... upper
  a[size_t(n * n + 2 * n)] = std::numeric_limits<double>::quiet_NaN();  // and lower (2, 0)
  const std::vector<int> st = ops->eigh_batched(v, w, a);
  REQUIRE(st.size() == 3);
  CHECK(st[0] == 0);
  CHECK(st[1] != 0);
  CHECK(st[2] == 0);
  for (int64_t b : {0, 2}) {
    Buf<double> one(Shape{n, n}), v1(Shape{n, n}), w1(Shape{n});
    std::copy(a.v.begin() + b * n * n, a.v.begin() + (b + 1) * n * n, one.v.begin());
    REQUIRE(ops->eigh(v1, w1, one) == 0);
    for (int64_t j = 0; j < n; j++) CHECK(w[size_t(b * n + j)] == w1[size_t(j)]);
    for (int64_t j = 0; j < n * n; j++) CHECK(v[size_t(b * n * n + j)] == v1[size_t(j)]);
  }
}

TEST_CASE("cpu cholesky_batched: A = RᵀR, R upper with a positive diagonal, failures per slice",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(73);
  const int64_t b = 4, n = 7;
  // Slices: SPD (GᵀG + I), SPD, indefinite (a symmetric matrix with negative eigenvalues),
  // SPD with a NaN in the upper triangle.
  Buf<double> a(Shape{b, n, n});
  std::vector<std::vector<double>> spd(static_cast<size_t>(b));
  for (int64_t k = 0; k < b; k++) {
    auto g = randn(Shape{n, n}, rng);
    spd[size_t(k)] = mm(g.v, true, g.v, false, n, n, n);
    for (int64_t i = 0; i < n; i++) spd[size_t(k)][size_t(i * n + i)] += 1.0;
    if (k == 2) spd[size_t(k)] = random_symmetric(n, rng).v;
    std::copy(spd[size_t(k)].begin(), spd[size_t(k)].end(), a.v.begin() + k * n * n);
  }
  a[size_t(3 * n * n + 1)] = std::numeric_limits<double>::quiet_NaN();
  // Only the upper triangle is read: garbage (and a NaN) below it in slice 0.
  for (int64_t i = 1; i < n; i++) a[size_t(i * n)] = i == 2 ? std::nan("") : 1e9;
  auto af = cast<float>(a);
  const std::vector<int> status = ops->cholesky_batched(a);
  REQUIRE(status.size() == size_t(b));
  CHECK(status[0] == 0);
  CHECK(status[1] == 0);
  CHECK(status[2] > 0);    // not positive definite
  CHECK(status[3] == -1);  // not finite
  for (int64_t k : {0, 1}) {
    const std::vector<double> r(a.v.begin() + k * n * n, a.v.begin() + (k + 1) * n * n);
    for (int64_t i = 0; i < n; i++) {
      CHECK(r[size_t(i * n + i)] > 0.0);
      for (int64_t j = 0; j < i; j++) CHECK(r[size_t(i * n + j)] == 0.0);
    }
    CHECK(max_abs_diff(mm(r, true, r, false, n, n, n), spd[size_t(k)]) < 1e-12);
  }
  const std::vector<int> sf = ops->cholesky_batched(af);  // f32 agrees with f64
  CHECK(sf == status);
  std::vector<double> r0(a.v.begin(), a.v.begin() + n * n), r0f(af.v.begin(), af.v.begin() + n * n);
  CHECK(rel_err(r0f, r0) < kF32Tol);
  Buf<double> rect(Shape{2, 3, 4});
  CHECK_THROWS_WITH(ops->cholesky_batched(rect), Contains("cholesky_batched") && Contains("[batch, n, n]"));
}

TEST_CASE("cpu solve_upper_right_batched: X R⁻¹ R = X", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(74);
  const int64_t b = 3, m = 9, n = 5;
  auto x = randn(Shape{b, m, n}, rng), r = randn(Shape{b, n, n}, rng);
  for (int64_t k = 0; k < b; k++)
    for (int64_t i = 0; i < n; i++) {
      r[size_t(k * n * n + i * n + i)] = 2.0 + std::fabs(r[size_t(k * n * n + i * n + i)]);
      for (int64_t j = 0; j < i; j++) r[size_t(k * n * n + i * n + j)] = 1e9;  // not read
    }
  const auto x0 = x.v;
  auto xf = cast<float>(x);
  auto rf = cast<float>(r);
  ops->solve_upper_right_batched(x, r);
  ops->solve_upper_right_batched(xf, rf);
  for (int64_t k = 0; k < b; k++) {
    std::vector<double> rk(r.v.begin() + k * n * n, r.v.begin() + (k + 1) * n * n);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < i; j++) rk[size_t(i * n + j)] = 0.0;
    const std::vector<double> xk(x.v.begin() + k * m * n, x.v.begin() + (k + 1) * m * n);
    const std::vector<double> x0k(x0.begin() + k * m * n, x0.begin() + (k + 1) * m * n);
    CHECK(max_abs_diff(mm(xk, false, rk, false, m, n, n), x0k) < 1e-12);
  }
  CHECK(rel_err(xf.v, x.v) < kF32Tol);
  Buf<double> wrong(Shape{b, m, n + 1});
  CHECK_THROWS_WITH(ops->solve_upper_right_batched(wrong, r), Contains("solve_upper_right_batched"));
}
