// CPU backend: RMSNorm, fused residual add + RMSNorm, QK-Norm + RoPE.
#include <complex>

#include "test_util.h"

using namespace mousse;
using namespace mousse::test;
using Catch::Matchers::Contains;

namespace {

// Independent closed form: x / sqrt(mean(x²) + 1e-6) per row.
std::vector<double> naive_rmsnorm(const Buf<double>& x, std::vector<double>* rstd = nullptr) {
  const int64_t N = x.t.rows(), C = x.t.cols();
  std::vector<double> y(x.size());
  if (rstd) rstd->resize(size_t(N));
  for (int64_t n = 0; n < N; n++) {
    double ms = 0;
    for (int64_t c = 0; c < C; c++) ms += x[size_t(n * C + c)] * x[size_t(n * C + c)] / double(C);
    const double r = 1.0 / std::sqrt(ms + 1e-6);
    for (int64_t c = 0; c < C; c++) y[size_t(n * C + c)] = x[size_t(n * C + c)] * r;
    if (rstd) (*rstd)[size_t(n)] = r;
  }
  return y;
}

}  // namespace

TEST_CASE("cpu rmsnorm: forward closed form, backward vs finite differences, f32",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(31);
  const int64_t N = 6, C = 20;
  auto x = randn(Shape{2, 3, C}, rng, 1.7);
  Buf<double> y(x.t.shape), rstd(Shape{N});
  ops->rmsnorm_forward(y, rstd, x);
  std::vector<double> want_r;
  CHECK(rel_err(y.v, naive_rmsnorm(x, &want_r)) < 1e-14);
  CHECK(rel_err(rstd.v, want_r) < 1e-14);

  auto r = randn(x.t.shape, rng);
  auto dx = randn(x.t.shape, rng);  // (+=): start from something non-zero
  const auto dx0 = dx.v;
  ops->rmsnorm_backward(dx, r, x, rstd);
  for (size_t i = 0; i < dx.size(); i++) dx[i] -= dx0[i];
  auto num = numeric_grad(x, [&] {
    Buf<double> yy(x.t.shape), rr(Shape{N});
    ops->rmsnorm_forward(yy, rr, x);
    return project(yy, r);
  });
  CHECK(rel_err(dx.v, num) < kFdTol);

  auto xf = cast<float>(x), rf = cast<float>(r);
  Buf<float> yf(x.t.shape), rstdf(Shape{N}), dxf(x.t.shape);
  ops->rmsnorm_forward(yf, rstdf, xf);
  ops->rmsnorm_backward(dxf, rf, xf, rstdf);
  CHECK(rel_err(yf.v, y.v) < kF32Tol);
  CHECK(rel_err(rstdf.v, rstd.v) < kF32Tol);
  CHECK(rel_err(dxf.v, dx.v) < kF32Tol);
}

TEST_CASE("cpu add_rmsnorm: equals add then rmsnorm, aliasing, gradient by composition",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(32);
  const Shape s{2, 5, 16};
  const int64_t N = 10;
  auto res = randn(s, rng), delta = randn(s, rng, 0.5);
  Buf<double> res_out(s), y(s), rstd(Shape{N});
  ops->add_rmsnorm_forward(res_out, y, rstd, res, delta);
  Buf<double> sum(s);
  for (size_t i = 0; i < sum.size(); i++) sum[i] = res[i] + delta[i];
  CHECK(res_out.v == sum.v);
  Buf<double> y2(s), rstd2(Shape{N});
  ops->rmsnorm_forward(y2, rstd2, sum);
  CHECK(y.v == y2.v);
  CHECK(rstd.v == rstd2.v);

  auto inplace = res;  // res_out may alias res_in
  Buf<double> y3(s), rstd3(Shape{N});
  ops->add_rmsnorm_forward(inplace, y3, rstd3, inplace, delta);
  CHECK(inplace.v == sum.v);
  CHECK(y3.v == y.v);

  // L = sum(y ∘ R1) + sum(res_out ∘ R2): dL/dres_in = dL/ddelta = rmsnorm_backward(R1) + R2
  auto r1 = randn(s, rng), r2 = randn(s, rng);
  Buf<double> g = r2;
  ops->rmsnorm_backward(g, r1, res_out, rstd);
  auto loss = [&] {
    Buf<double> ro(s), yy(s), rr(Shape{N});
    ops->add_rmsnorm_forward(ro, yy, rr, res, delta);
    return project(yy, r1) + project(ro, r2);
  };
  CHECK(rel_err(g.v, numeric_grad(res, loss)) < kFdTol);
  CHECK(rel_err(g.v, numeric_grad(delta, loss)) < kFdTol);

  auto resf = cast<float>(res), deltaf = cast<float>(delta);
  Buf<float> rof(s), yf(s), rstdf(Shape{N});
  ops->add_rmsnorm_forward(rof, yf, rstdf, resf, deltaf);
  CHECK(rel_err(yf.v, y.v) < kF32Tol);
  CHECK(rel_err(rstdf.v, rstd.v) < kF32Tol);
}

TEST_CASE("cpu rmsnorm: shape errors", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  Buf<double> x(Shape{4, 8}), y(Shape{4, 9}), r(Shape{4}), r5(Shape{5}), e(Shape{4, 0});
  CHECK_THROWS_WITH(ops->rmsnorm_forward(y, r, x),
                    Contains("rmsnorm_forward") && Contains("[4, 9]") && Contains("[4, 8]"));
  CHECK_THROWS_WITH(ops->rmsnorm_forward(x, r5, x), Contains("rstd") && Contains("[5]"));
  CHECK_THROWS_WITH(ops->rmsnorm_forward(e, r, e), Contains("empty"));
  CHECK_THROWS_WITH(ops->rmsnorm_backward(y, x, x, r), Contains("rmsnorm_backward"));
}

// ---------------------------------------------------------------------------- QK-Norm + RoPE

TEST_CASE("cpu qknorm_rope: known vectors, rotation closed form, identity at t = 0",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(33);
  const int64_t B = 1, T = 6, H = 2, hd = 8, C = H * hd, half = hd / 2;
  const float base = 10000.f;
  auto qkv = randn(Shape{B, T, 3 * C}, rng);
  // q head 0 = u at every position: entries ±1, so mean(u²) = 1 exactly
  std::vector<double> u(hd);
  for (int64_t i = 0; i < hd; i++) u[size_t(i)] = (rng() & 1) ? 1.0 : -1.0;
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < hd; i++) qkv[size_t(t * 3 * C + i)] = u[size_t(i)];
  Buf<double> out(qkv.t.shape), rstd(Shape{B * T, 2 * H});
  ops->qknorm_rope_forward(out, rstd, qkv, int(H), base);

  const double r = 1.0 / std::sqrt(1.0 + 1e-6);
  for (int64_t t = 0; t < T; t++) {
    CHECK(rstd[size_t(t * 2 * H)] == Approx(r).epsilon(1e-15));
    double norm2 = 0;
    for (int64_t i = 0; i < half; i++) {
      // pair (i, i + hd/2) as the complex number x1 + i x2, turned by +θ
      const double theta = double(t) * std::pow(10000.0, -2.0 * double(i) / double(hd));
      const std::complex<double> z =
          std::complex<double>(u[size_t(i)] * r, u[size_t(i + half)] * r) * std::polar(1.0, theta);
      const double y1 = out[size_t(t * 3 * C + i)], y2 = out[size_t(t * 3 * C + i + half)];
      CHECK(y1 == Approx(z.real()).margin(1e-14));
      CHECK(y2 == Approx(z.imag()).margin(1e-14));
      norm2 += y1 * y1 + y2 * y2;
      if (t == 0) {  // position 0: no rotation
        CHECK(y1 == u[size_t(i)] * r);
        CHECK(y2 == u[size_t(i + half)] * r);
      }
    }
    CHECK(std::sqrt(norm2) == Approx(std::sqrt(double(hd)) * r).epsilon(1e-14));  // a rotation
  }
  // rstd per (b, t) = [q heads..., k heads...]: check the k head 1 entry, and v copied
  for (int64_t t = 0; t < T; t++) {
    double ms = 0;
    for (int64_t i = 0; i < hd; i++) {
      const double v = qkv[size_t(t * 3 * C + C + hd + i)];
      ms += v * v / double(hd);
    }
    CHECK(rstd[size_t(t * 2 * H + H + 1)] == Approx(1.0 / std::sqrt(ms + 1e-6)).epsilon(1e-14));
    for (int64_t c = 0; c < C; c++)
      CHECK(out[size_t(t * 3 * C + 2 * C + c)] == qkv[size_t(t * 3 * C + 2 * C + c)]);
  }
}

TEST_CASE("cpu qknorm_rope: q·k after RoPE depends only on the relative position",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(34);
  const int64_t B = 1, T = 8, H = 1, hd = 16, C = hd;
  auto a = randn(Shape{hd}, rng), c = randn(Shape{hd}, rng);
  Buf<double> qkv(Shape{B, T, 3 * C});
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < hd; i++) {
      qkv[size_t(t * 3 * C + i)] = a[size_t(i)];
      qkv[size_t(t * 3 * C + C + i)] = c[size_t(i)];
    }
  Buf<double> out(qkv.t.shape), rstd(Shape{T, 2});
  ops->qknorm_rope_forward(out, rstd, qkv, int(H), 500.f);
  auto score = [&](int64_t t, int64_t s) {
    double d = 0;
    for (int64_t i = 0; i < hd; i++) d += out[size_t(t * 3 * C + i)] * out[size_t(s * 3 * C + C + i)];
    return d;
  };
  for (int64_t delta = 0; delta < 4; delta++)
    for (int64_t s = 1; s + delta < T; s++)
      CHECK(score(s + delta, s) == Approx(score(delta, 0)).margin(1e-12));
}

TEST_CASE("cpu qknorm_rope: backward vs finite differences, f32 vs f64", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(35);
  const int64_t B = 2, T = 5, H = 2, hd = 6, C = H * hd;
  const float base = 100.f;  // larger angles over few positions
  auto x = randn(Shape{B, T, 3 * C}, rng, 1.3);
  auto r = randn(x.t.shape, rng);
  Buf<double> y(x.t.shape), rstd(Shape{B * T, 2 * H}), dx(x.t.shape);
  ops->qknorm_rope_forward(y, rstd, x, int(H), base);
  ops->fill(dx, 7.0);  // (=): overwritten
  ops->qknorm_rope_backward(dx, r, x, rstd, int(H), base);
  auto num = numeric_grad(x, [&] {
    Buf<double> yy(x.t.shape), rr(Shape{B * T, 2 * H});
    ops->qknorm_rope_forward(yy, rr, x, int(H), base);
    return project(yy, r);
  });
  CHECK(rel_err(dx.v, num) < kFdTol);

  auto xf = cast<float>(x), rf = cast<float>(r);
  Buf<float> yf(x.t.shape), rstdf(Shape{B * T, 2 * H}), dxf(x.t.shape);
  ops->qknorm_rope_forward(yf, rstdf, xf, int(H), base);
  ops->qknorm_rope_backward(dxf, rf, xf, rstdf, int(H), base);
  CHECK(rel_err(yf.v, y.v) < kF32Tol);
  CHECK(rel_err(rstdf.v, rstd.v) < kF32Tol);
  CHECK(rel_err(dxf.v, dx.v) < kF32Tol);

  // in place (qkv_out aliasing qkv_in) gives the same result
  auto inplace = x;
  Buf<double> rstd2(Shape{B * T, 2 * H});
  ops->qknorm_rope_forward(inplace, rstd2, inplace, int(H), base);
  CHECK(inplace.v == y.v);
}

TEST_CASE("cpu qknorm_rope: degenerate shapes rejected", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  Buf<double> odd(Shape{1, 2, 3 * 6}), r(Shape{2, 4});
  Buf<double> out(odd.t.shape);
  CHECK_THROWS_WITH(ops->qknorm_rope_forward(out, r, odd, 2, 10000.f),
                    Contains("qknorm_rope_forward") && Contains("even"));
  CHECK_THROWS_WITH(ops->qknorm_rope_forward(out, r, odd, 4, 10000.f), Contains("n_head"));
  Buf<double> flat(Shape{2, 3 * 8}), flat_out(Shape{2, 3 * 8});
  CHECK_THROWS_WITH(ops->qknorm_rope_forward(flat_out, r, flat, 2, 10000.f), Contains("3-D"));
  Buf<double> good(Shape{1, 2, 3 * 8}), good_out(Shape{1, 2, 3 * 8}), r_bad(Shape{2, 3});
  CHECK_THROWS_WITH(ops->qknorm_rope_forward(good_out, r_bad, good, 2, 10000.f),
                    Contains("rstd") && Contains("[2, 3]"));
  CHECK_THROWS_WITH(ops->qknorm_rope_forward(good_out, r, good, 2, 0.f), Contains("rope_base"));
}
