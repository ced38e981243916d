// CPU backend: memory, elementwise ops, reductions, relu², dtype and shape errors.
#include <omp.h>

#include <cstdint>

#include "test_util.h"

using namespace mousse;
using namespace mousse::test;
using Catch::Matchers::Contains;

TEST_CASE("cpu ops: name, device, aligned alloc, host copies", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  CHECK(ops->device() == Device::cpu);
  CHECK_THAT(ops->name(), Contains("cpu (OpenMP, "));
  CHECK_THAT(ops->name(), Contains("thread"));

  void* p = ops->alloc(1000);
  CHECK(reinterpret_cast<uintptr_t>(p) % 256 == 0);
  Tensor t;
  t.data = p;
  t.dtype = DType::f64;
  t.shape = Shape{5, 7};
  std::mt19937_64 rng(11);
  auto src = randn(Shape{5, 7}, rng);
  ops->from_host(t, src.v.data());
  std::vector<double> back(35);
  ops->to_host(back.data(), t);
  CHECK(back == src.v);
  ops->synchronize();
  ops->free(p);
  void* z = ops->alloc(0);  // a zero-byte request still yields a usable pointer
  CHECK(z != nullptr);
  ops->free(z);
}

TEST_CASE("cpu ops: fill, copy across dtypes, scale, axpby", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(12);
  auto x = randn(Shape{3, 50000}, rng);  // large enough for the OpenMP path

  Buf<float> f(Shape{3, 50000});
  ops->fill(f, 2.5);
  CHECK(std::all_of(f.v.begin(), f.v.end(), [](float v) { return v == 2.5f; }));
  Buf<int32_t> ids(Shape{4});
  ops->fill(ids, 7);
  CHECK(ids[3] == 7);

  ops->copy(f, x);  // f64 -> f32 rounds
  for (size_t i = 0; i < x.size(); i += 997) CHECK(f[i] == float(x[i]));
  Buf<double> d(Shape{150000});
  ops->copy(d, f);  // f32 -> f64 exact; shapes may differ, numel must not
  for (size_t i = 0; i < x.size(); i += 997) CHECK(d[i] == double(f[i]));
  Buf<double> s(Shape{3, 50000});
  ops->copy_stochastic(s, x, 123);  // no bf16 on the CPU: a plain copy
  CHECK(s.v == x.v);

  ops->scale(s, -0.5);
  for (size_t i = 0; i < x.size(); i += 991) CHECK(s[i] == -0.5 * x[i]);

  auto y = randn(Shape{3, 50000}, rng);
  auto y0 = y;
  ops->axpby(y, 0.25, x, 2.0);
  for (size_t i = 0; i < x.size(); i += 991) CHECK(y[i] == Approx(0.25 * x[i] + 2.0 * y0[i]));
  // x may be f32 while y is f64
  y = y0;
  ops->axpby(y, 1.5, f, -1.0);
  for (size_t i = 0; i < x.size(); i += 991)
    CHECK(y[i] == Approx(1.5 * double(f[i]) - y0[i]).epsilon(1e-15));
  Buf<float> yf(Shape{3, 50000});
  CHECK_THROWS_WITH(ops->axpby(yf, 1.0, x, 1.0), Contains("axpby") && Contains("f32"));
}

TEST_CASE("cpu ops: sum and sum_squares in double, deterministic across thread counts",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(13);
  auto x = randn(Shape{100003}, rng);
  double s = 0, ss = 0;
  for (double v : x.v) s += v, ss += v * v;
  CHECK(ops->sum(x) == Approx(s).epsilon(1e-12));
  CHECK(ops->sum_squares(x) == Approx(ss).epsilon(1e-12));
  auto xf = cast<float>(x);
  double sf = 0;
  for (float v : xf.v) sf += double(v);
  CHECK(ops->sum(xf) == Approx(sf).epsilon(1e-12));  // accumulated in double, not float

  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double s1 = ops->sum(x), ss1 = ops->sum_squares(x);
  omp_set_num_threads(std::max(2, threads));
  CHECK(ops->sum(x) == s1);
  CHECK(ops->sum_squares(x) == ss1);
  omp_set_num_threads(threads);
}

TEST_CASE("cpu ops: relu2 forward, backward vs finite differences, f32 vs f64",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(14);
  // values in ±[0.1, 2]: central differences never straddle the kink at 0
  auto x = uniform(Shape{4, 24}, rng, 0.1, 2.0);
  std::bernoulli_distribution coin(0.5);
  for (auto& v : x.v)
    if (coin(rng)) v = -v;
  Buf<double> y(Shape{4, 24});
  ops->relu2_forward(y, x);
  for (size_t i = 0; i < x.size(); i++) CHECK(y[i] == (x[i] > 0 ? x[i] * x[i] : 0.0));

  auto r = randn(Shape{4, 24}, rng);
  Buf<double> dx(Shape{4, 24});
  ops->fill(dx, 99.0);  // (=): overwritten
  ops->relu2_backward(dx, r, x);
  auto num = numeric_grad(x, [&] {
    ops->relu2_forward(y, x);
    return project(y, r);
  });
  CHECK(rel_err(dx.v, num) < kFdTol);

  auto xf = cast<float>(x), rf = cast<float>(r);
  Buf<float> yf(Shape{4, 24}), dxf(Shape{4, 24});
  ops->relu2_forward(y, x);
  ops->relu2_forward(yf, xf);
  ops->relu2_backward(dxf, rf, xf);
  CHECK(rel_err(yf.v, y.v) < kF32Tol);
  CHECK(rel_err(dxf.v, dx.v) < kF32Tol);
}

TEST_CASE("cpu ops: bf16 and mixed dtypes are rejected with the op's name", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::vector<uint16_t> raw(16);
  Tensor b = bf16_tensor(raw.data(), Shape{4, 4});
  Buf<float> f(Shape{4, 4});
  Buf<double> d(Shape{4, 4});
  CHECK_THROWS_WITH(ops->scale(b, 2.0), Contains("scale") && Contains("bf16"));
  CHECK_THROWS_WITH(ops->copy(b, f), Contains("copy") && Contains("bf16"));
  CHECK_THROWS_WITH(ops->relu2_forward(f, d), Contains("relu2_forward") && Contains("f32") &&
                                                  Contains("f64"));
  CHECK_THROWS_WITH(ops->sum(b), Contains("sum") && Contains("bf16"));
  Buf<double> small(Shape{4, 3});
  CHECK_THROWS_WITH(ops->relu2_forward(small, d),
                    Contains("relu2_forward") && Contains("[4, 3]") && Contains("[4, 4]"));
  CHECK_THROWS_WITH(ops->copy(small, d), Contains("copy") && Contains("[4, 3]"));
  Tensor gpu = d.t;
  gpu.device = Device::cuda;
  CHECK_THROWS_WITH(ops->scale(gpu, 1.0), Contains("cuda"));
}
