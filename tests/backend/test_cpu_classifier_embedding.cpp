// CPU backend: fused classifier (softmax cross-entropy over the real vocabulary) and the token
// embedding.
#include <omp.h>

#include "test_util.h"

using namespace mousse;
using namespace mousse::test;
using Catch::Matchers::Contains;

TEST_CASE("cpu classifier: losses vs log-softmax, padding ignored, f32 vs f64",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(51);
  const int64_t N = 6, Vp = 40, V = 33;
  auto logits = randn(Shape{2, 3, Vp}, rng, 3.0);
  for (int64_t n = 0; n < N; n++)
    for (int64_t j = V; j < Vp; j++) logits[size_t(n * Vp + j)] = 50.0;  // must not matter
  auto targets = random_ids(N, int32_t(V), rng);
  Buf<double> losses(Shape{2, 3});
  auto lg = logits;
  ops->classifier(losses, lg, targets, V, 1.f, /*compute_grad=*/false);
  CHECK(lg.v == logits.v);  // untouched without compute_grad
  for (int64_t n = 0; n < N; n++) {
    double z = 0;
    for (int64_t j = 0; j < V; j++) z += std::exp(logits[size_t(n * Vp + j)]);
    const double log_softmax = logits[size_t(n * Vp + targets[size_t(n)])] - std::log(z);
    CHECK(losses[size_t(n)] == Approx(-log_softmax).epsilon(1e-13));
  }

  auto lgf = cast<float>(logits);
  Buf<float> lossesf(Shape{2, 3});
  ops->classifier(lossesf, lgf, targets, V, 0.5f, true);
  auto lg2 = logits;
  ops->classifier(losses, lg2, targets, V, 0.5f, true);
  CHECK(rel_err(lossesf.v, losses.v) < kF32Tol);
  CHECK(rel_err(lgf.v, lg2.v) < kF32Tol);
}

TEST_CASE("cpu classifier: gradient vs finite differences, zero on the padding",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(52);
  const int64_t N = 5, Vp = 24, V = 19;
  const float grad_scale = 0.375f;  // e.g. 1 / (B·T)
  auto logits = randn(Shape{N, Vp}, rng, 2.0);
  auto targets = random_ids(N, int32_t(V), rng);
  Buf<double> losses(Shape{N});
  auto grad = logits;
  ops->classifier(losses, grad, targets, V, grad_scale, true);
  for (int64_t n = 0; n < N; n++)
    for (int64_t j = V; j < Vp; j++) CHECK(grad[size_t(n * Vp + j)] == 0.0);
  auto num = numeric_grad(logits, [&] {
    Buf<double> l(Shape{N});
    auto copy = logits;
    ops->classifier(l, copy, targets, V, 1.f, false);
    double s = 0;
    for (double v : l.v) s += v;
    return double(grad_scale) * s;
  });
  CHECK(rel_err(grad.v, num) < kFdTol);
  // each row of softmax − onehot sums to zero
  for (int64_t n = 0; n < N; n++) {
    double s = 0;
    for (int64_t j = 0; j < Vp; j++) s += grad[size_t(n * Vp + j)];
    CHECK(s == Approx(0.0).margin(1e-15));
  }
}

TEST_CASE("cpu classifier: errors", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  Buf<double> logits(Shape{3, 8}), losses(Shape{3}), losses4(Shape{4});
  Buf<int32_t> targets(Shape{3});
  targets[1] = 6;
  CHECK_THROWS_WITH(ops->classifier(losses, logits, targets, 9, 1.f, false),
                    Contains("classifier") && Contains("vocab_size"));
  CHECK_THROWS_WITH(ops->classifier(losses, logits, targets, 6, 1.f, false),
                    Contains("target 6"));
  CHECK_THROWS_WITH(ops->classifier(losses4, logits, targets, 8, 1.f, false),
                    Contains("losses") && Contains("[4]"));
  Buf<double> tgt_f(Shape{3});
  Tensor t = tgt_f.t;
  CHECK_THROWS_WITH(ops->classifier(losses, logits, t, 8, 1.f, false), Contains("i32"));
}

TEST_CASE("cpu embedding: forward gathers rows, backward vs finite differences, (+=)",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(53);
  const int64_t Vp = 12, C = 8, N = 20;  // N > Vp: tokens repeat
  auto wte = randn(Shape{Vp, C}, rng);
  auto tokens = random_ids(N, int32_t(Vp), rng);
  Buf<double> out(Shape{4, 5, C});
  ops->embedding_forward(out, wte, tokens);
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++)
      CHECK(out[size_t(n * C + c)] == wte[size_t(tokens[size_t(n)] * C + c)]);

  auto r = randn(out.t.shape, rng);
  auto dwte = randn(wte.t.shape, rng);
  const auto dwte0 = dwte.v;
  ops->embedding_backward(dwte, r, tokens);
  for (size_t i = 0; i < dwte.size(); i++) dwte[i] -= dwte0[i];
  auto num = numeric_grad(wte, [&] {
    Buf<double> o(out.t.shape);
    ops->embedding_forward(o, wte, tokens);
    return project(o, r);
  });
  CHECK(rel_err(dwte.v, num) < kFdTol);

  auto wtef = cast<float>(wte), rf = cast<float>(r);
  Buf<float> outf(out.t.shape), dwtef(wte.t.shape);
  ops->embedding_forward(outf, wtef, tokens);
  ops->embedding_backward(dwtef, rf, tokens);
  CHECK(rel_err(dwtef.v, dwte.v) < kF32Tol);
}

TEST_CASE("cpu embedding backward: bitwise deterministic across thread counts",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(54);
  const int64_t Vp = 16, C = 512, N = 64;  // big enough for the OpenMP path
  auto tokens = random_ids(N, int32_t(Vp), rng);
  auto dout = randn<float>(Shape{N, C}, rng);
  const int threads = omp_get_max_threads();
  Buf<float> d1(Shape{Vp, C}), d2(Shape{Vp, C});
  omp_set_num_threads(1);
  ops->embedding_backward(d1, dout, tokens);
  omp_set_num_threads(std::max(2, threads));
  ops->embedding_backward(d2, dout, tokens);
  omp_set_num_threads(threads);
  CHECK(d1.v == d2.v);
}

TEST_CASE("cpu embedding: errors", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  Buf<double> wte(Shape{5, 4}), out(Shape{3, 4}), wide(Shape{3, 6});
  Buf<int32_t> tokens(Shape{3});
  tokens[2] = 5;
  CHECK_THROWS_WITH(ops->embedding_forward(out, wte, tokens),
                    Contains("embedding_forward") && Contains("token 5"));
  tokens[2] = 1;
  CHECK_THROWS_WITH(ops->embedding_forward(wide, wte, tokens),
                    Contains("[3, 6]") && Contains("[5, 4]"));
  Buf<int32_t> tokens4(Shape{4});
  CHECK_THROWS_WITH(ops->embedding_backward(wte, out, tokens4), Contains("tokens"));
}
