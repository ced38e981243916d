// CPU backend GEMM: all transpose combinations, alpha/beta, batched, gradients through
// transposed products (as the model's backward uses them), f32 vs f64, shape errors.
#include "test_util.h"

using namespace mousse;
using namespace mousse::test;
using Catch::Matchers::Contains;

namespace {

// Naive out = alpha * op(a) @ op(b) + beta * out, a and b given in their stored shapes.
std::vector<double> naive_gemm(const Buf<double>& a, bool ta, const Buf<double>& b, bool tb,
                               double alpha, double beta, const std::vector<double>& out0,
                               int64_t M, int64_t N, int64_t K) {
  const int64_t ac = a.t.cols(), bc = b.t.cols();
  std::vector<double> out(size_t(M * N));
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) {
        const double av = ta ? a[size_t(k * ac + i)] : a[size_t(i * ac + k)];
        const double bv = tb ? b[size_t(j * bc + k)] : b[size_t(k * bc + j)];
        s += av * bv;
      }
      out[size_t(i * N + j)] = alpha * s + beta * out0[size_t(i * N + j)];
    }
  return out;
}

Shape stored(bool trans, int64_t r, int64_t c) { return trans ? Shape{c, r} : Shape{r, c}; }

}  // namespace

TEST_CASE("cpu matmul: four transpose combos, alpha and beta, f32 vs f64", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(21);
  const int64_t M = 7, N = 5, K = 9;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      DYNAMIC_SECTION("trans_a " << ta << " trans_b " << tb) {
        auto a = randn(stored(ta, M, K), rng);
        auto b = randn(stored(tb, K, N), rng);
        auto out = randn(Shape{M, N}, rng);
        const auto out0 = out.v;
        ops->matmul(out, a, ta, b, tb, 0.75f, -0.5f);
        auto want = naive_gemm(a, ta, b, tb, 0.75, -0.5, out0, M, N, K);
        CHECK(rel_err(out.v, want) < 1e-14);

        ops->matmul(out, a, ta, b, tb);  // defaults: alpha 1, beta 0 (out's contents ignored)
        want = naive_gemm(a, ta, b, tb, 1.0, 0.0, out0, M, N, K);
        CHECK(rel_err(out.v, want) < 1e-14);

        auto af = cast<float>(a), bf = cast<float>(b);
        Buf<float> outf(Shape{M, N});
        ops->matmul(outf, af, ta, bf, tb);
        CHECK(rel_err(outf.v, want) < kF32Tol);
      }
    }
}

TEST_CASE("cpu matmul: operands viewed as matrices (leading dims folded)", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(22);
  auto x = randn(Shape{2, 3, 8}, rng);  // [B, T, C] activations -> 6 rows
  auto w = randn(Shape{4, 8}, rng);     // nn.Linear weight (out, in)
  Buf<double> y(Shape{2, 3, 4});
  ops->matmul(y, x, false, w, true);
  auto want = naive_gemm(x, false, w, true, 1.0, 0.0, std::vector<double>(24), 6, 4, 8);
  CHECK(rel_err(y.v, want) < 1e-14);
}

TEST_CASE("cpu matmul: gradients through transposed products vs finite differences",
          "[backend][cpu]") {
  // L = sum(op(A) op(B) ∘ R); the backward the model uses, written with matmul itself:
  //   C = A B:   dA = R Bᵀ,  dB = Aᵀ R        C = A Bᵀ:  dA = R B,   dB = Rᵀ A
  //   C = Aᵀ B:  dA = B Rᵀ,  dB = A R         C = AᵀBᵀ:  dA = Bᵀ Rᵀ, dB = Rᵀ Aᵀ
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(23);
  const int64_t M = 4, N = 3, K = 5;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      DYNAMIC_SECTION("trans_a " << ta << " trans_b " << tb) {
        auto a = randn(stored(ta, M, K), rng);
        auto b = randn(stored(tb, K, N), rng);
        auto r = randn(Shape{M, N}, rng);
        Buf<double> c(Shape{M, N}), da(a.t.shape), db(b.t.shape);
        auto loss = [&] {
          ops->matmul(c, a, ta, b, tb);
          return project(c, r);
        };
        if (!ta) ops->matmul(da, r, false, b, !tb);  // [M,K] = R op(B)ᵀ
        else ops->matmul(da, b, tb, r, true);        // [K,M] = op(B) Rᵀ
        if (!tb) ops->matmul(db, a, !ta, r, false);  // [K,N] = op(A)ᵀ R
        else ops->matmul(db, r, true, a, ta);        // [N,K] = Rᵀ op(A)
        CHECK(rel_err(da.v, numeric_grad(a, loss)) < kFdTol);
        CHECK(rel_err(db.v, numeric_grad(b, loss)) < kFdTol);
      }
    }
}

TEST_CASE("cpu matmul_batched: every matrix of the batch, all combos, beta", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(24);
  const int64_t batch = 3, M = 4, N = 6, K = 5;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      Shape sa = stored(ta, M, K), sb = stored(tb, K, N);
      auto a = randn(Shape{batch, sa[0], sa[1]}, rng);
      auto b = randn(Shape{batch, sb[0], sb[1]}, rng);
      auto out = randn(Shape{batch, M, N}, rng);
      const auto out0 = out.v;
      ops->matmul_batched(out, a, ta, b, tb, 2.0f, 0.5f);
      for (int64_t i = 0; i < batch; i++) {
        Buf<double> ai(sa), bi(sb);
        std::copy(a.v.begin() + i * M * K, a.v.begin() + (i + 1) * M * K, ai.v.begin());
        std::copy(b.v.begin() + i * K * N, b.v.begin() + (i + 1) * K * N, bi.v.begin());
        std::vector<double> oi(out0.begin() + i * M * N, out0.begin() + (i + 1) * M * N);
        auto want = naive_gemm(ai, ta, bi, tb, 2.0, 0.5, oi, M, N, K);
        std::vector<double> got(out.v.begin() + i * M * N, out.v.begin() + (i + 1) * M * N);
        CHECK(rel_err(got, want) < 1e-14);
      }
    }
}

TEST_CASE("cpu matmul: shape and dtype errors name the op and the shapes", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  Buf<double> a(Shape{4, 5}), b(Shape{6, 3}), out(Shape{4, 3});
  CHECK_THROWS_WITH(ops->matmul(out, a, false, b, false),
                    Contains("matmul") && Contains("[4, 5]") && Contains("[6, 3]"));
  Buf<double> b2(Shape{5, 3}), out2(Shape{3, 4});
  CHECK_THROWS_WITH(ops->matmul(out2, a, false, b2, false), Contains("[3, 4]"));
  Buf<float> bf(Shape{5, 3});
  CHECK_THROWS_WITH(ops->matmul(out, a, false, bf, false), Contains("matmul") && Contains("f32"));
  Buf<double> e(Shape{4, 0}), e2(Shape{0, 3});
  CHECK_THROWS_WITH(ops->matmul(out, e, false, e2, false), Contains("empty"));
  Buf<double> a3(Shape{2, 4, 5}), b3(Shape{3, 5, 3}), o3(Shape{2, 4, 3});
  CHECK_THROWS_WITH(ops->matmul_batched(o3, a3, false, b3, false),
                    Contains("matmul_batched") && Contains("batch"));
  CHECK_THROWS_WITH(ops->matmul_batched(out, a, false, b2, false), Contains("3-D"));
}

namespace {
// x rounded to 11 significant bits (TF32's 10 stored + the implicit one), ties to even, by
// arithmetic (frexp / nearbyint / ldexp) rather than the backend's bit manipulation.
double tf32_by_arithmetic(double x) {
  int e = 0;
  const double m = std::frexp(x, &e);  // x = m · 2^e, 0.5 <= |m| < 1
  return std::ldexp(std::nearbyint(std::ldexp(m, 11)), e - 11);
}
}  // namespace

TEST_CASE("cpu matmul_tf32: operands rounded to TF32 (ties to even), f32 accumulation",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  SECTION("closed form on 1x1 products") {
    // 1 + 2^-12 rounds down to 1; 1 + 2^-11 is a tie between 1 and 1 + 2^-10 (odd last bit):
    // to 1; 1 + 3·2^-11 is a tie between 1 + 2^-10 and 1 + 2^-9 (even): up to 1 + 2^-9.
    const std::vector<std::pair<float, float>> cases = {
        {1.0f + 0x1p-12f, 1.0f}, {1.0f + 0x1p-11f, 1.0f}, {1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-9f},
        {-(1.0f + 3 * 0x1p-11f), -(1.0f + 0x1p-9f)}, {3.0f, 3.0f}};
    for (const auto& [x, want] : cases) {
      Buf<float> a(Shape{1, 1}), b(Shape{1, 1}), out(Shape{1, 1});
      a[0] = x;
      b[0] = 1.0f;
      ops->matmul_tf32(out, a, false, b, false);
      CHECK(out[0] == want);
      ops->matmul(out, a, false, b, false);  // the f32 product keeps every bit
      CHECK(out[0] == x);
    }
  }
  SECTION("random operands, four transpose combos, alpha and beta, a Gram matrix") {
    std::mt19937_64 rng(22);
    const int64_t M = 33, N = 17, K = 65;
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        auto a = randn(stored(ta, M, K), rng), b = randn(stored(tb, K, N), rng);
        auto out = randn(Shape{M, N}, rng);
        auto af = cast<float>(a), bf = cast<float>(b);
        auto outf = cast<float>(out);
        const auto out0 = out.v;
        for (auto& x : a.v) x = tf32_by_arithmetic(double(float(x)));
        for (auto& x : b.v) x = tf32_by_arithmetic(double(float(x)));
        const auto want = naive_gemm(a, ta, b, tb, 0.25, 0.95, cast<double>(outf).v, M, N, K);
        ops->matmul_tf32(outf, af, ta, bf, tb, 0.25, 0.95);
        INFO("trans_a " << ta << " trans_b " << tb);
        CHECK(rel_err(outf.v, want) < kF32Tol);
        // and it is not the f32 product: TF32 rounding moved it by ~2^-11 relative
        Buf<float> exact = cast<float>(out);
        ops->matmul(exact, af, ta, bf, tb, 0.25, 0.95);
        const double moved = rel_err(exact.v, want);
        CHECK(moved > 1e-5);
        CHECK(moved < 2e-3);
      }
    // a Gram matrix G Gᵀ (a and b the same buffer), as the optimizers' statistics use it
    auto g = randn<float>(Shape{M, K}, rng);
    Buf<float> gram(Shape{M, M});
    ops->matmul_tf32(gram, g, false, g, true);
    Buf<double> gr = cast<double>(g);
    for (auto& x : gr.v) x = tf32_by_arithmetic(x);
    CHECK(rel_err(gram.v, naive_gemm(gr, false, gr, true, 1.0, 0.0,
                                     std::vector<double>(size_t(M * M)), M, M, K)) < kF32Tol);
  }
  SECTION("f64 operands are rejected with the op's name") {
    std::mt19937_64 rng(3);
    auto a = randn(Shape{2, 2}, rng);
    Buf<double> out(Shape{2, 2});
    CHECK_THROWS_WITH(ops->matmul_tf32(out, a, false, a, false),
                      Contains("matmul_tf32") && Contains("f32"));
  }
}
