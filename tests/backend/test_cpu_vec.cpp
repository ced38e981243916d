// CPU backend: the vectorised kernels (cpu_vec.h) — f32 exp against libm's double exp, the f32
// classifier against the f64 one on fresh random rows (extreme logits, padded columns, NaN and
// infinities), the optimizer ranges against their formulas, every instruction-set variant bit for
// bit against the one the CPU dispatches to, and OpenBLAS's kernel advice.
#include <omp.h>

#include <cstring>
#include <limits>

#include "backend/cpu/cpu_blas.h"
#include "backend/cpu/cpu_vec.h"
#include "test_util.h"

using namespace mousse;
using namespace mousse::test;
using Catch::Matchers::Contains;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Distance in f32 ulps of got from the exact value want (a double).
double ulps(float got, double want) {
  const double ulp = std::ldexp(1.0, std::ilogb(float(want)) - 23);
  return std::fabs(double(got) - want) / ulp;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

TEST_CASE("cpu vec: exp_f32 within 2 ulp of exp on [-87.33, 88.37], 0 / inf / NaN outside",
          "[backend][cpu]") {
  std::mt19937_64 rng(71);
  std::uniform_real_distribution<float> wide(-87.33f, 88.37f), near0(-1.f, 1.f);
  double worst = 0;
  for (int i = 0; i < 200000; i++) {
    const float x = i % 2 ? wide(rng) : near0(rng);
    worst = std::max(worst, ulps(cpu::exp_f32(x), std::exp(double(x))));
  }
  for (float x = -87.33f; x <= 0.f; x += 0.01f)  // the softmax's range, densely
    worst = std::max(worst, ulps(cpu::exp_f32(x), std::exp(double(x))));
  INFO("worst error " << worst << " ulp");
  CHECK(worst <= 2.0);
  CHECK(cpu::exp_f32(0.f) == 1.f);
  CHECK(cpu::exp_f32(-0.f) == 1.f);
  CHECK(cpu::exp_f32(-87.34f) == 0.f);  // exp < FLT_MIN: flushed
  CHECK(cpu::exp_f32(-1e30f) == 0.f);
  CHECK(cpu::exp_f32(-kInf) == 0.f);
  CHECK(cpu::exp_f32(88.4f) == kInf);
  CHECK(cpu::exp_f32(kInf) == kInf);
  CHECK(std::isnan(cpu::exp_f32(kNaN)));
}

TEST_CASE("cpu vec: lane sums and the fixed-order block sums", "[backend][cpu]") {
  std::mt19937_64 rng(72);
  for (int64_t n : {1, 15, 16, 17, 1000, 4096, 4097, 100003}) {
    auto x = randn<float>(Shape{n}, rng, 2.0);
    auto xd = cast<double>(x);
    long double s = 0, ss = 0;
    for (float v : x.v) s += v, ss += (long double)v * v;
    INFO("n = " << n);
    CHECK(cpu::lane_sum(x.v.data(), n) == Approx(double(s)).epsilon(1e-13).margin(1e-13));
    CHECK(cpu::lane_sum(xd.v.data(), n) == Approx(double(s)).epsilon(1e-13).margin(1e-13));
    CHECK(cpu::lane_sum_squares(x.v.data(), n) == Approx(double(ss)).epsilon(1e-13));
    CHECK(cpu::lane_sum_squares(xd.v.data(), n) == cpu::lane_sum_squares(x.v.data(), n));
    // ops.sum_squares sums the same blocks, in parallel
    auto ops = make_cpu_ops();
    CHECK(ops->sum_squares(x) == cpu::block_sum_squares(x.v.data(), n));
  }
  CHECK(cpu::max_f32(std::vector<float>{-3.f, 7.f, -1e30f, 6.99f}.data(), 4) == 7.f);
}

// Rows of logits that stress the f32 classifier: ordinary ones and extremes, with the padding
// columns holding values that would change every result if they were read.
TEST_CASE("cpu classifier: vectorised f32 rows vs the f64 path, extreme logits, padding",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(73);
  const int64_t V = 1000 + int64_t(rng() % 37), Vp = V + 1 + int64_t(rng() % 40);  // odd widths
  const int kinds = 12;
  const int64_t N = 4 * kinds;
  Buf<float> logits(Shape{N, Vp});
  auto targets = random_ids(N, int32_t(V), rng);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int64_t n = 0; n < N; n++) {
    float* row = logits.v.data() + n * Vp;
    const int kind = int(n % kinds);
    for (int64_t j = 0; j < V; j++) {
      const float z = normal(rng);
      switch (kind) {
        case 0: row[j] = 3.f * z; break;                             // ordinary
        case 1: row[j] = 1e30f + 1e24f * z; break;                   // huge, close together
        case 2: row[j] = -1e30f + 1e24f * z; break;                  // hugely negative
        case 3: row[j] = (j % 2 ? 3e38f : -3e38f) * (0.9f + 0.1f * std::min(std::fabs(z), 1.f));
          break;
        case 4: row[j] = 1e-40f * z; break;                          // subnormal
        case 5: row[j] = 0.25f; break;                               // uniform
        case 6: row[j] = j == 7 ? 200.f : z; break;                  // one dominant
        case 7: row[j] = 80.f * z; break;                            // wide spread
        case 8: row[j] = j % 3 ? -kInf : z; break;                   // -inf entries
        case 9: row[j] = 1e4f + z; break;                            // large offset
        case 10: row[j] = -100.f * std::fabs(z); break;              // all far below 0
        default: row[j] = 20.f * z - 50.f; break;
      }
    }
    // keep the loss within f32: a finite target logit, and no -3e38 target next to +3e38
    if (kind == 8) row[targets[size_t(n)]] = normal(rng);
    if (kind == 3) targets[size_t(n)] |= 1;
    if (targets[size_t(n)] >= V) targets[size_t(n)] = 1;
    for (int64_t j = V; j < Vp; j++) row[j] = j % 2 ? kNaN : 3e38f;  // never read
  }
  const double grad_scale = 1.0 / double(N);
  auto lg32 = logits;
  auto lgd = cast<double>(logits);
  Buf<float> loss32(Shape{N}), loss32_only(Shape{N});
  Buf<double> lossd(Shape{N});
  ops->classifier(loss32, lg32, targets, V, grad_scale, true);
  ops->classifier(lossd, lgd, targets, V, grad_scale, true);
  auto untouched = logits;
  ops->classifier(loss32_only, untouched, targets, V, grad_scale, false);
  CHECK(std::memcmp(untouched.v.data(), logits.v.data(), logits.v.size() * 4) == 0);
  for (int64_t n = 0; n < N; n++) {
    INFO("row " << n << " (kind " << n % kinds << "), target " << targets[size_t(n)]);
    CHECK(loss32_only[size_t(n)] == loss32[size_t(n)]);
    REQUIRE(std::isfinite(lossd[size_t(n)]));
    CHECK(std::fabs(loss32[size_t(n)] - lossd[size_t(n)]) <=
          5e-7 * std::max(1.0, std::fabs(lossd[size_t(n)])));
    // Each gradient within a few f32 roundings of the f64 one, plus the terms below FLT_MIN
    // that f32 flushes to 0 (at most 1.2e-38 · grad_scale each).
    int64_t off = 0;
    for (int64_t j = 0; j < V; j++) {
      const double want = lgd[size_t(n * Vp + j)], got = lg32[size_t(n * Vp + j)];
      if (!(std::fabs(got - want) <= 5e-7 * std::fabs(want) + 1.2e-38 * grad_scale)) off++;
    }
    CHECK(off == 0);
    for (int64_t j = V; j < Vp; j++) CHECK(lg32[size_t(n * Vp + j)] == 0.f);
  }
  // A NaN or +inf among the real logits gives a NaN loss (as the f64 path), never a number.
  for (float bad : {kNaN, kInf}) {
    auto row = logits;
    row[size_t(5)] = bad;
    Buf<float> l(Shape{N});
    ops->classifier(l, row, targets, V, grad_scale, true);
    CHECK(std::isnan(l[0]));
  }
  // Rows are independent: the thread count does not change a bit.
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  auto lg1 = logits;
  Buf<float> loss1(Shape{N});
  ops->classifier(loss1, lg1, targets, V, grad_scale, true);
  omp_set_num_threads(threads);
  CHECK(std::memcmp(loss1.v.data(), loss32.v.data(), size_t(N) * 4) == 0);
  CHECK(std::memcmp(lg1.v.data(), lg32.v.data(), lg1.v.size() * 4) == 0);
}

TEST_CASE("cpu vec: adamw_range and lion_range follow their formulas", "[backend][cpu]") {
  std::mt19937_64 rng(74);
  const int64_t n = 1000 + int64_t(rng() % 100);
  auto p = randn<float>(Shape{n}, rng), g = randn<float>(Shape{n}, rng);
  auto m = randn<float>(Shape{n}, rng, 0.1), v = uniform<float>(Shape{n}, rng, 0.0, 0.02);
  g[3] = 0.f, m[3] = 0.f;  // Lion's sign at 0
  const AdamWArgs a{3e-3, 0.9, 0.95, 1e-8, 0.1, 0.19, 0.0975, 0.7};
  const LionArgs l{1e-3, 0.95, 0.98, 0.1, 0.7};
  auto p1 = p, m1 = m, v1 = v, p2 = p, m2 = m;
  cpu::adamw_range(p1.v.data(), g.v.data(), m1.v.data(), v1.v.data(), n, a);
  cpu::lion_range(p2.v.data(), g.v.data(), m2.v.data(), n, l);
  for (int64_t i = 0; i < n; i++) {
    const double gi = a.grad_scale * double(g[i]);
    const double mi = a.beta1 * double(m[i]) + (1 - a.beta1) * gi;
    const double vi = a.beta2 * double(v[i]) + (1 - a.beta2) * gi * gi;
    const double pi = double(p[i]) * (1 - a.lr * a.weight_decay) -
                      a.lr / a.bias_correction1 * mi /
                          (std::sqrt(vi) * (1 / std::sqrt(a.bias_correction2)) + a.eps);
    const double ops_h = double(p[i]) * (1 - a.lr * a.weight_decay) -
                         a.lr * (mi / a.bias_correction1) /
                             (std::sqrt(vi / a.bias_correction2) + a.eps);
    CHECK(std::fabs(pi - ops_h) <= 1e-15 * std::fabs(ops_h));  // ops.h's formula, to round-off
    CHECK(m1[i] == float(mi));
    CHECK(v1[i] == float(vi));
    CHECK(p1[i] == float(pi));
    const double gl = l.grad_scale * double(g[i]);
    const double c = l.beta1 * double(m[i]) + (1 - l.beta1) * gl;
    const double u = c > 0 ? 1.0 : c < 0 ? -1.0 : 0.0;
    CHECK(p2[i] == float(double(p[i]) * (1 - l.lr * l.weight_decay) - l.lr * u));
    CHECK(m2[i] == float(l.beta2 * double(m[i]) + (1 - l.beta2) * gl));
  }
}

#ifdef MOUSSE_TEST_CPU_VEC_VARIANTS
// cpu_vec.cpp compiled once more for a single instruction set each (tests/backend/CMakeLists.txt)
#define MOUSSE_DECLARE_VARIANT(ns)                                                             \
  namespace mousse::ns {                                                                       \
  float exp_f32(float);                                                                        \
  float max_f32(const float*, int64_t);                                                        \
  double exp_sum_f32(const float*, int64_t, float);                                            \
  double exp_sum_inplace_f32(float*, int64_t, float);                                          \
  void exp_inplace_f32(float*, int64_t, float);                                                \
  void scale_f32(float*, int64_t, float);                                                      \
  double lane_sum(const float*, int64_t);                                                      \
  double lane_sum_squares(const float*, int64_t);                                              \
  double lane_sum_squares(const double*, int64_t);                                             \
  void adamw_range(float*, const float*, float*, float*, int64_t, const AdamWArgs&);           \
  void lion_range(double*, const float*, double*, int64_t, const LionArgs&);                   \
  }
MOUSSE_DECLARE_VARIANT(vec_baseline)
MOUSSE_DECLARE_VARIANT(vec_avx2)
MOUSSE_DECLARE_VARIANT(vec_avx512)

namespace {
struct Variant {
  const char* name;
  bool runs;
  float (*exp)(float);
  float (*max)(const float*, int64_t);
  double (*exp_sum)(const float*, int64_t, float);
  double (*exp_sum_inplace)(float*, int64_t, float);
  void (*exp_inplace)(float*, int64_t, float);
  void (*scale)(float*, int64_t, float);
  double (*sum)(const float*, int64_t);
  double (*sum_squares)(const float*, int64_t);
  double (*sum_squares_d)(const double*, int64_t);
  void (*adamw)(float*, const float*, float*, float*, int64_t, const AdamWArgs&);
  void (*lion)(double*, const float*, double*, int64_t, const LionArgs&);
};
#define MOUSSE_VARIANT(ns, runs)                                                               \
  Variant {                                                                                    \
    #ns, runs, mousse::ns::exp_f32, mousse::ns::max_f32, mousse::ns::exp_sum_f32,              \
        mousse::ns::exp_sum_inplace_f32, mousse::ns::exp_inplace_f32, mousse::ns::scale_f32,   \
        mousse::ns::lane_sum, mousse::ns::lane_sum_squares, mousse::ns::lane_sum_squares,      \
        mousse::ns::adamw_range, mousse::ns::lion_range                                        \
  }
}  // namespace

TEST_CASE("cpu vec: every instruction-set variant computes the same bits", "[backend][cpu]") {
  __builtin_cpu_init();
  const Variant variants[] = {
      MOUSSE_VARIANT(cpu, true),  // the one dispatched to on this CPU
      MOUSSE_VARIANT(vec_baseline, true),
      MOUSSE_VARIANT(vec_avx2, bool(__builtin_cpu_supports("avx2"))),
      MOUSSE_VARIANT(vec_avx512, bool(__builtin_cpu_supports("avx512f"))),
  };
  std::mt19937_64 rng(75);
  const int64_t n = 4096 + 1 + int64_t(rng() % 64);
  auto x = randn<float>(Shape{n}, rng, 30.0);
  for (int64_t i = 0; i < n; i += 97) x[size_t(i)] = i % 2 ? -1e30f : -kInf;
  x[size_t(n / 2)] = -0.f;
  auto xd = randn<double>(Shape{n}, rng);
  auto g = randn<float>(Shape{n}, rng), p0 = randn<float>(Shape{n}, rng);
  auto m0 = randn<float>(Shape{n}, rng, 0.1), v0 = uniform<float>(Shape{n}, rng, 0.0, 0.02);
  const AdamWArgs a{3e-3, 0.9, 0.95, 1e-8, 0.1, 0.19, 0.0975, 0.7};
  const LionArgs l{1e-3, 0.95, 0.98, 0.1, 0.7};
  struct Out {
    std::vector<float> exp, exps, p, m, v, scaled;
    std::vector<double> lp, lm;
    double esum, esum_in, sum, ss, ssd;
    float max;
  };
  auto run = [&](const Variant& w) {
    Out o;
    for (float xi : x.v) o.exp.push_back(w.exp(xi));
    o.max = w.max(x.v.data(), n);
    o.esum = w.exp_sum(x.v.data(), n, o.max);
    o.exps = x.v;
    o.esum_in = w.exp_sum_inplace(o.exps.data(), n, o.max);
    w.exp_inplace(o.exps.data(), n, -1.f);
    o.scaled = x.v;
    w.scale(o.scaled.data(), n, 0.37f);
    o.sum = w.sum(x.v.data(), n);
    o.ss = w.sum_squares(g.v.data(), n);
    o.ssd = w.sum_squares_d(xd.v.data(), n);
    o.p = p0.v, o.m = m0.v, o.v = v0.v;
    w.adamw(o.p.data(), g.v.data(), o.m.data(), o.v.data(), n, a);
    o.lp = std::vector<double>(xd.v.begin(), xd.v.end());
    o.lm = std::vector<double>(size_t(n), 0.01);
    w.lion(o.lp.data(), g.v.data(), o.lm.data(), n, l);
    return o;
  };
  auto bits = [](const auto& a, const auto& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof a[0]) == 0;
  };
  const Out ref = run(variants[0]);
  for (const Variant& w : variants) {
    if (!w.runs) {
      WARN("skipped: this CPU cannot run the " << w.name << " variant");
      continue;
    }
    INFO("variant " << w.name);
    const Out o = run(w);
    CHECK(bits(o.exp, ref.exp));
    CHECK(same_bits(o.max, ref.max));
    CHECK(o.esum == ref.esum);
    CHECK(o.esum_in == ref.esum_in);
    CHECK(bits(o.exps, ref.exps));
    CHECK(bits(o.scaled, ref.scaled));
    CHECK(o.sum == ref.sum);
    CHECK(o.ss == ref.ss);
    CHECK(o.ssd == ref.ssd);
    CHECK(bits(o.p, ref.p));
    CHECK(bits(o.m, ref.m));
    CHECK(bits(o.v, ref.v));
    CHECK(bits(o.lp, ref.lp));
    CHECK(bits(o.lm, ref.lm));
  }
}
#endif

TEST_CASE("cpu blas: OpenBLAS's kernel is reported, generic kernels get advice",
          "[backend][cpu]") {
  CHECK_THAT(cpu::blas_description(), Contains("OpenBLAS") && Contains("kernel"));
  CHECK_THAT(make_cpu_ops()->name(), Contains(cpu::blas_description()));
  CHECK_THAT(cpu::blas_core_advice("Prescott", 3), Contains("OPENBLAS_CORETYPE=SkylakeX"));
  CHECK_THAT(cpu::blas_core_advice("PRESCOTT", 3), Contains("SkylakeX"));
  CHECK_THAT(cpu::blas_core_advice("Nehalem", 2), Contains("OPENBLAS_CORETYPE=Haswell"));
  CHECK_THAT(cpu::blas_core_advice("Sandybridge", 3), Contains("OPENBLAS_CORETYPE=SkylakeX"));
  CHECK(cpu::blas_core_advice("SkylakeX", 3).empty());
  CHECK(cpu::blas_core_advice("Haswell", 3).empty());   // not a generic kernel
  CHECK(cpu::blas_core_advice("Haswell", 2).empty());
  CHECK(cpu::blas_core_advice("Prescott", 1).empty());  // nothing better to run
  CHECK(cpu::blas_core_advice("Prescott", 0).empty());
  CHECK(cpu::blas_core_advice("SomeFutureCore", 3).empty());
  CHECK(cpu::blas_core_level("Zen") == 2);
  const int level = cpu::cpu_vector_level();
  CHECK(level >= 0);
  CHECK(level <= 3);
}
