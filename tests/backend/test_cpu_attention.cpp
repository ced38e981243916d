// CPU backend: causal softmax attention, forward against the explicit
// softmax(QKᵀ/√hd + causal mask) V, backward against finite differences.
#include <limits>

#include "test_util.h"

using namespace mousse;
using namespace mousse::test;
using Catch::Matchers::Contains;

namespace {

struct Naive {
  std::vector<double> out, lse;
};

// Full T×T scores with -inf above the diagonal, softmax by rows, times V.
Naive naive_attention(const Buf<double>& qkv, int64_t B, int64_t T, int64_t H, int64_t hd) {
  const int64_t C = H * hd;
  Naive r{std::vector<double>(size_t(B * T * C)), std::vector<double>(size_t(B * H * T))};
  auto at = [&](int64_t b, int64_t t, int64_t part, int64_t h, int64_t c) {
    return qkv[size_t((b * T + t) * 3 * C + part * C + h * hd + c)];
  };
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      std::vector<double> S(size_t(T * T));
      for (int64_t i = 0; i < T; i++)
        for (int64_t j = 0; j < T; j++) {
          double s = 0;
          for (int64_t c = 0; c < hd; c++) s += at(b, i, 0, h, c) * at(b, j, 1, h, c);
          S[size_t(i * T + j)] = j <= i ? s / std::sqrt(double(hd)) : -inf;
        }
      for (int64_t i = 0; i < T; i++) {
        double z = 0;
        for (int64_t j = 0; j < T; j++) z += std::exp(S[size_t(i * T + j)]);
        r.lse[size_t((b * H + h) * T + i)] = std::log(z);
        for (int64_t c = 0; c < hd; c++) {
          double o = 0;
          for (int64_t j = 0; j < T; j++) o += std::exp(S[size_t(i * T + j)]) / z * at(b, j, 2, h, c);
          r.out[size_t((b * T + i) * C + h * hd + c)] = o;
        }
      }
    }
  return r;
}

}  // namespace

TEST_CASE("cpu attention: forward vs explicit masked softmax, lse, f32 vs f64",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(41);
  for (int64_t H : {1, 2, 4}) {
    DYNAMIC_SECTION("heads " << H) {
      const int64_t B = 2, T = 16, hd = 8, C = H * hd;
      auto qkv = randn(Shape{B, T, 3 * C}, rng, 1.5);
      Buf<double> out(Shape{B, T, C}), lse(Shape{B, H, T});
      ops->attention_forward(out, lse, qkv, int(H));
      const Naive want = naive_attention(qkv, B, T, H, hd);
      CHECK(rel_err(out.v, want.out) < 1e-13);
      CHECK(rel_err(lse.v, want.lse) < 1e-13);

      auto qkvf = cast<float>(qkv);
      Buf<float> outf(Shape{B, T, C}), lsef(Shape{B, H, T});
      ops->attention_forward(outf, lsef, qkvf, int(H));
      CHECK(rel_err(outf.v, out.v) < kF32Tol);
      CHECK(rel_err(lsef.v, lse.v) < kF32Tol);
    }
  }
}

TEST_CASE("cpu attention: first position attends only to itself, large scores stay finite",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(42);
  const int64_t B = 1, T = 4, H = 2, hd = 4, C = H * hd;
  // scores in the hundreds: exp overflows f32 (and nearly f64) unless max-subtracted
  auto qkv = randn(Shape{B, T, 3 * C}, rng, 12.0);
  Buf<double> out(Shape{B, T, C}), lse(Shape{B, H, T});
  ops->attention_forward(out, lse, qkv, int(H));
  auto qkvf = cast<float>(qkv);
  Buf<float> outf(Shape{B, T, C}), lsef(Shape{B, H, T});
  ops->attention_forward(outf, lsef, qkvf, int(H));
  for (float v : outf.v) CHECK(std::isfinite(v));
  CHECK(rel_err(outf.v, out.v) < 1e-4);
  for (int64_t c = 0; c < C; c++) CHECK(out[size_t(c)] == Approx(qkv[size_t(2 * C + c)]));
  for (double v : out.v) CHECK(std::isfinite(v));
  for (double v : lse.v) CHECK(std::isfinite(v));
  CHECK(rel_err(out.v, naive_attention(qkv, B, T, H, hd).out) < 1e-12);
}

TEST_CASE("cpu attention: backward vs finite differences, f32 vs f64", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(43);
  const int64_t B = 2, T = 7, H = 2, hd = 4, C = H * hd;
  auto qkv = randn(Shape{B, T, 3 * C}, rng);
  auto r = randn(Shape{B, T, C}, rng);
  Buf<double> out(Shape{B, T, C}), lse(Shape{B, H, T}), dqkv(qkv.t.shape);
  ops->attention_forward(out, lse, qkv, int(H));
  ops->fill(dqkv, -3.0);  // (=): overwritten
  ops->attention_backward(dqkv, r, qkv, out, lse, int(H));
  auto num = numeric_grad(qkv, [&] {
    Buf<double> o(Shape{B, T, C}), l(Shape{B, H, T});
    ops->attention_forward(o, l, qkv, int(H));
    return project(o, r);
  });
  CHECK(rel_err(dqkv.v, num) < kFdTol);

  auto qkvf = cast<float>(qkv), rf = cast<float>(r);
  Buf<float> outf(Shape{B, T, C}), lsef(Shape{B, H, T}), dqkvf(qkv.t.shape);
  ops->attention_forward(outf, lsef, qkvf, int(H));
  ops->attention_backward(dqkvf, rf, qkvf, outf, lsef, int(H));
  CHECK(rel_err(dqkvf.v, dqkv.v) < kF32Tol);
}

TEST_CASE("cpu attention: shape errors", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  Buf<double> qkv(Shape{2, 4, 24}), out(Shape{2, 4, 8}), lse(Shape{2, 2, 4});
  CHECK_THROWS_WITH(ops->attention_forward(out, lse, qkv, 3), Contains("n_head"));
  Buf<double> bad_out(Shape{2, 4, 6});
  CHECK_THROWS_WITH(ops->attention_forward(bad_out, lse, qkv, 2),
                    Contains("attention_forward") && Contains("out") && Contains("[2, 4, 6]"));
  Buf<double> bad_lse(Shape{2, 4});
  CHECK_THROWS_WITH(ops->attention_forward(out, bad_lse, qkv, 2), Contains("lse"));
  Buf<double> flat(Shape{8, 24});
  CHECK_THROWS_WITH(ops->attention_forward(out, lse, flat, 2), Contains("3-D"));
  Buf<double> not3(Shape{2, 4, 25});
  CHECK_THROWS_WITH(ops->attention_forward(out, lse, not3, 2), Contains("3C"));
  Buf<double> dq(Shape{2, 4, 24});
  Buf<float> dof(Shape{2, 4, 8});
  CHECK_THROWS_WITH(ops->attention_backward(dq, dof, qkv, out, lse, 2),
                    Contains("attention_backward") && Contains("dout"));
}
