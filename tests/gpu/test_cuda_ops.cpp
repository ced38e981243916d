// Every CUDA op against its CPU twin on fresh seeded random inputs, at f32 (~1e-5 relative to
// the tensor's scale) and bf16 (~1e-2) tolerances. bf16 inputs are rounded on the host first so
// both backends see identical values (the CPU computes in f32).
//
// Without a usable GPU the executable prints a SKIPPED line and exits 77 (ctest: skipped).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "gpu_test_util.h"
#include "attention_cudnn.h"
#include "cuda_ops.h"

using namespace mousse;
using namespace mousse::gputest;
using Outs = std::vector<std::vector<double>>;

namespace {

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rtol,
                  const std::string& what) {
  REQUIRE(got.size() == want.size());
  const CloseResult r = closeness(got, want, rtol);
  INFO(what << ": worst ratio " << r.ratio << " at " << r.worst << " got " << r.got << " want "
            << r.want << " (max |want| " << r.max_abs_want << ", rtol " << rtol << ", n "
            << got.size() << ")");
  CHECK(!r.nonfinite);
  CHECK(r.ratio <= 1.0);
}

void expect_all_close(const Outs& got, const Outs& want, double rtol, const std::string& what) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); i++)
    expect_close(got[i], want[i], rtol, what + " output " + std::to_string(i));
}

double tol(DType dt, double f32_tol = 1e-5) { return dt == DType::bf16 ? 2e-2 : f32_tol; }

// Runs f on the CPU and on the GPU (dt) and compares every output. The CPU reference runs in
// f64 when the GPU does (f64 tolerances are far below f32 round-off), else in f32.
template <class F>
void compare(DType dt, double rtol, const std::string& what, F&& f) {
  const Outs want = f(cpu(), dt == DType::f64 ? DType::f64 : DType::f32);
  const Outs got = f(gpu(), dt);
  expect_all_close(got, want, rtol, what + " [" + dtype_name(dt) + "]");
}

std::vector<float> maybe_round(std::vector<float> v, DType dt) {
  if (dt == DType::bf16) round_bf16(v);
  return v;
}

const DType kActDtypes[] = {DType::f32, DType::bf16};

}  // namespace

// ------------------------------------------------------------------ elementwise / reductions

TEST_CASE("cuda fill, scale, axpby, copy (dtype conversions)", "[gpu]") {
  for (DType dt : {DType::f32, DType::f64}) {
    const int64_t n = 1037;
    auto x = randn(n, 1), y = randn(n, 2);
    compare(dt, 1e-6, "fill/scale/axpby", [&](Ops& o, DType d) {
      DevTensor a = make(o, d, {n}, x), b = make(o, d, {n}, y), f(o, d, {7, 3});
      o.fill(*f, 2.5);
      o.scale(*a, -0.75);
      o.axpby(*b, 0.5, *a, -1.25);
      return Outs{download(o, *a), download(o, *b), download(o, *f)};
    });
  }
  // axpby with an f32 x into a bf16 y, and copy conversions (exact vs the host's RNE rounding).
  const int64_t n = 2049;
  auto x = randn(n, 3, 3.f);
  Ops& g = gpu();
  DevTensor xf = make(g, DType::f32, {n}, x), xb(g, DType::bf16, {n}), xd(g, DType::f64, {n}),
      back(g, DType::f32, {n});
  g.copy(*xb, *xf);
  g.copy(*xd, *xb);
  g.copy(*back, *xd);
  auto hb = download(g, *xb), hback = download(g, *back);
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; i++) want[i] = round_bf16(x[i]);
  expect_close(hb, want, 0.0 + 1e-12, "copy f32->bf16 (RNE)");
  expect_close(hback, want, 1e-12, "copy bf16->f64->f32");
  {  // f32 -> f64 -> f32 is exact for values that are not bf16 numbers (Cholesky QR's path)
    DevTensor d64 = make_nan(g, DType::f64, {n}), f32 = make_nan(g, DType::f32, {n});
    g.copy(*d64, *xf);
    g.copy(*f32, *d64);
    std::vector<double> exact(x.begin(), x.end());
    CHECK(download(g, *d64) == exact);
    CHECK(download(g, *f32) == exact);
  }
  DevTensor yb = make(g, DType::bf16, {n}, maybe_round(randn(n, 4), DType::bf16));
  auto y0 = download(g, *yb);
  g.axpby(*yb, 2.0, *xf, 0.5);
  auto y1 = download(g, *yb);
  std::vector<double> w(n);
  for (int64_t i = 0; i < n; i++) w[i] = 2.0 * x[i] + 0.5 * y0[i];
  expect_close(y1, w, 1e-2, "axpby bf16 y, f32 x");
  DevTensor ti = make(g, DType::i32, {5}, {1, 2, 3, 4, 5}), ti2(g, DType::i32, {5});
  g.fill(*ti2, 7);
  auto hi = download(g, *ti2);
  CHECK(hi == std::vector<double>(5, 7.0));
  g.copy(*ti2, *ti);
  CHECK(download(g, *ti2) == download(g, *ti));
}

TEST_CASE("cuda copy_stochastic is unbiased, seeded and lands on a neighbour", "[gpu]") {
  Ops& g = gpu();
  const int64_t n = 1 << 16;
  // One value between two bf16 neighbours, repeated: the mean must approach it.
  const float v = 1.0f + 0.3f * (1.0f / 128.0f);  // 30% of the way from 1 to the next bf16
  std::vector<float> x(n, v);
  DevTensor src = make(g, DType::f32, {n}, x), d1(g, DType::bf16, {n}), d2(g, DType::bf16, {n}),
      d3(g, DType::bf16, {n});
  g.copy_stochastic(*d1, *src, 42);
  g.copy_stochastic(*d2, *src, 42);
  g.copy_stochastic(*d3, *src, 43);
  auto h1 = download(g, *d1), h2 = download(g, *d2), h3 = download(g, *d3);
  CHECK(h1 == h2);
  CHECK(h1 != h3);
  double mean = 0;
  int off_grid = 0;
  for (double e : h1) {
    if (!(e == 1.0 || e == 1.0 + 1.0 / 128.0)) off_grid++;
    mean += e;
  }
  CHECK(off_grid == 0);
  mean /= n;
  CHECK(std::fabs(mean - v) < 2e-4);
  // Random values: every result is the floor or the ceiling bf16 of its input.
  auto r = randn(n, 5, 10.f);
  DevTensor s2 = make(g, DType::f32, {n}, r), o2 = make_nan(g, DType::bf16, {n});
  g.copy_stochastic(*o2, *s2, 7);
  auto h = download(g, *o2);
  {  // views one element into their allocations (the scalar path) round the same way
    std::vector<float> shifted(size_t(n + 1), 0.f);
    std::copy(r.begin(), r.end(), shifted.begin() + 1);
    DevTensor s3 = make(g, DType::f32, {n + 1}, shifted), o3 = make_nan(g, DType::bf16, {n + 1});
    g.copy_stochastic(o3->slice(1, Shape{n}), s3->slice(1, Shape{n}), 7);
    CHECK(download(g, o3->slice(1, Shape{n})) == h);
  }
  int bad = 0;
  for (int64_t i = 0; i < n; i++) {
    if (std::fabs(h[i] - r[i]) > std::fabs(r[i]) * (1.0 / 128.0) + 1e-30) bad++;
  }
  CHECK(bad == 0);
}

TEST_CASE("cuda sum and sum_squares", "[gpu]") {
  for (int64_t n : {1, 1000, 300001}) {
    auto x = randn(n, 10 + n, 1.f, 0.3f);
    for (DType dt : {DType::f32, DType::f64}) {
      DevTensor c = make(cpu(), dt, {n}, x), d = make(gpu(), dt, {n}, x);
      CHECK(gpu().sum(*d) == Approx(cpu().sum(*c)).epsilon(1e-9).margin(1e-9));
      CHECK(gpu().sum_squares(*d) == Approx(cpu().sum_squares(*c)).epsilon(1e-9));
    }
    auto xr = maybe_round(x, DType::bf16);
    DevTensor b = make(gpu(), DType::bf16, {n}, xr);
    double s = 0, ss = 0;
    for (float v : xr) s += v, ss += double(v) * v;
    CHECK(gpu().sum(*b) == Approx(s).epsilon(1e-9).margin(1e-9));
    CHECK(gpu().sum_squares(*b) == Approx(ss).epsilon(1e-9));
  }
}

TEST_CASE("cuda relu2 forward/backward", "[gpu]") {
  for (DType dt : kActDtypes) {
    const int64_t n = 5000;
    auto x = maybe_round(randn(n, 20), dt), g = maybe_round(randn(n, 21), dt);
    compare(dt, tol(dt), "relu2", [&](Ops& o, DType d) {
      DevTensor in = make(o, d, {50, 100}, x), go = make(o, d, {50, 100}, g),
                out = make_nan(o, d, {50, 100}), din = make_nan(o, d, {50, 100});
      o.relu2_forward(*out, *in);
      o.relu2_backward(*din, *go, *in);
      return Outs{download(o, *out), download(o, *din)};
    });
  }
}

// ------------------------------------------------------------------ GEMM

TEST_CASE("cuda matmul: transposes, alpha/beta, dtypes", "[gpu]") {
  const int64_t M = 67, N = 45, K = 93;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      Shape sa = ta ? Shape{K, M} : Shape{M, K};
      Shape sb = tb ? Shape{N, K} : Shape{K, N};
      auto a = randn(M * K, 30 + ta), b = randn(K * N, 32 + tb), c = randn(M * N, 34);
      for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        auto ar = maybe_round(a, dt), br = maybe_round(b, dt);
        for (DType od : {DType::f32, DType::bf16}) {
          if (dt != DType::bf16 && od == DType::bf16) continue;
          const DType out_dt = dt == DType::f64 ? DType::f64 : od;
          auto cr = maybe_round(c, out_dt);
          const std::string what = std::string("matmul ta=") + char('0' + ta) + " tb=" + char('0' + tb) +
                                   " out " + dtype_name(out_dt);
          const Outs want = [&] {
            Ops& o = cpu();
            DevTensor A = make(o, DType::f32, sa, ar), B = make(o, DType::f32, sb, br),
                      C = make(o, DType::f32, {M, N}, cr), C2(o, DType::f32, {M, N});
            o.matmul(*C, *A, ta, *B, tb, 0.75f, 0.5f);
            o.matmul(*C2, *A, ta, *B, tb);
            return Outs{download(o, *C), download(o, *C2)};
          }();
          Ops& o = gpu();
          DevTensor A = make(o, dt, sa, ar), B = make(o, dt, sb, br), C = make(o, out_dt, {M, N}, cr),
                    C2(o, out_dt, {M, N});
          o.fill(*C2, 123.0);  // beta = 0 must ignore the old contents
          o.matmul(*C, *A, ta, *B, tb, 0.75f, 0.5f);
          o.matmul(*C2, *A, ta, *B, tb);
          const double rt = dt == DType::bf16 ? (out_dt == DType::bf16 ? 1e-2 : 1e-3) : 1e-5;
          expect_all_close(Outs{download(o, *C), download(o, *C2)}, want, rt, what);
        }
      }
    }
}

TEST_CASE("cuda matmul at model shapes (bf16 -> f32 weight gradient accumulation)", "[gpu]") {
  const int64_t BT = 256, C = 768;
  auto x = maybe_round(randn(BT * C, 40), DType::bf16), w = maybe_round(randn(3 * C * C, 41, 0.03f), DType::bf16);
  auto dy = maybe_round(randn(BT * 3 * C, 42), DType::bf16), dw0 = randn(3 * C * C, 43, 0.1f);
  compare(DType::bf16, 3e-3, "matmul 162m shapes", [&](Ops& o, DType d) {
    DevTensor X = make(o, d, {BT, C}, x), W = make(o, d, {3 * C, C}, w), Y = make_nan(o, DType::f32, {BT, 3 * C}),
              DY = make(o, d, {BT, 3 * C}, dy), DW = make(o, DType::f32, {3 * C, C}, dw0);
    o.matmul(*Y, *X, false, *W, true);              // y = x Wᵀ
    o.matmul(*DW, *DY, true, *X, false, 1.f, 1.f);  // dW += dyᵀ x
    return Outs{download(o, *Y), download(o, *DW)};
  });
}

TEST_CASE("cuda matmul_tf32 vs the CPU's TF32 emulation (the statistics' GEMMs)", "[gpu]") {
  // Tensor cores may truncate the operands to TF32 where the CPU rounds to nearest: up to one
  // TF32 unit (2^-10) per operand apart, so 2e-3 against the emulation. And with rows aligned to
  // 16 bytes (K = 256) it must not be the f32 product: that would mean the TF32 compute type was
  // ignored. (With K = 257 the rows are only 4-byte aligned, where cuBLASLt may legally pick an
  // f32 kernel: FAST_TF32 allows the down-conversion, it does not demand it.)
  const int64_t M = 96, N = 80;
  for (int64_t K : {257, 256})
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        auto a = randn(M * K, 36 + ta), b = randn(K * N, 38 + tb), c = randn(M * N, 39);
        const Shape sa = ta ? Shape{K, M} : Shape{M, K}, sb = tb ? Shape{N, K} : Shape{K, N};
        auto run = [&](Ops& o, bool tf32) {
          DevTensor A = make(o, DType::f32, sa, a), B = make(o, DType::f32, sb, b),
                    C = make(o, DType::f32, {M, N}, c);
          if (tf32) o.matmul_tf32(*C, *A, ta, *B, tb, 0.05, 0.95);
          else o.matmul(*C, *A, ta, *B, tb, 0.05, 0.95);
          return download(o, *C);
        };
        const std::string what = "matmul_tf32 K=" + std::to_string(K) + " ta=" + char('0' + ta) +
                                 " tb=" + char('0' + tb);
        const std::vector<double> got = run(gpu(), true);
        expect_close(got, run(cpu(), true), 2e-3, what);
        if (K % 4 != 0) continue;
        const CloseResult vs_f32 = closeness(got, run(cpu(), false), 1e-6);
        INFO(what << ": against the f32 product, worst ratio " << vs_f32.ratio << " at rtol 1e-6");
        CHECK(vs_f32.ratio > 1.0);
      }
  // the statistics' shape: G Gᵀ with a and b one buffer, accumulated with beta
  const int64_t m = 384, n = 96;
  auto g = randn(m * n, 44, 0.01f), s0 = randn(m * m, 45, 1e-4f);
  auto gram = [&](Ops& o) {
    DevTensor G = make(o, DType::f32, {m, n}, g), S = make(o, DType::f32, {m, m}, s0);
    o.matmul_tf32(*S, *G, false, *G, true, 0.05, 0.95);
    return download(o, *S);
  };
  expect_close(gram(gpu()), gram(cpu()), 2e-3, "matmul_tf32 G Gᵀ");
}

TEST_CASE("cuda matmul_batched", "[gpu]") {
  const int64_t Bn = 3, M = 33, N = 17, K = 29;
  for (DType dt : {DType::f32, DType::bf16, DType::f64})
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        auto a = maybe_round(randn(Bn * M * K, 50), dt), b = maybe_round(randn(Bn * K * N, 51), dt),
             c = maybe_round(randn(Bn * M * N, 52), dt);
        compare(dt, tol(dt), "matmul_batched", [&](Ops& o, DType d) {
          DevTensor A = make(o, d, ta ? Shape{Bn, K, M} : Shape{Bn, M, K}, a),
                    B = make(o, d, tb ? Shape{Bn, N, K} : Shape{Bn, K, N}, b),
                    C = make(o, d, {Bn, M, N}, c);
          o.matmul_batched(*C, *A, ta, *B, tb, 1.5f, -0.5f);
          return Outs{download(o, *C)};
        });
      }
}

// ------------------------------------------------------------------ model ops

TEST_CASE("cuda embedding forward/backward (deterministic)", "[gpu]") {
  const int64_t V = 300, C = 96, N = 517;
  std::vector<float> tok(N);
  std::mt19937 rng(60);
  for (auto& t : tok) t = float(rng() % 40 == 0 ? rng() % V : rng() % 7);  // many repeats
  auto wte = randn(V * C, 61), dout = randn(N * C, 62), dw0 = randn(V * C, 63);
  for (DType dt : kActDtypes) {
    auto dr = maybe_round(dout, dt), wr = maybe_round(wte, dt);
    compare(dt, tol(dt), "embedding", [&](Ops& o, DType d) {
      DevTensor W = make(o, d, {V, C}, wr), T = make(o, DType::i32, {N}, tok), out = make_nan(o, d, {N, C}),
                DO = make(o, d, {N, C}, dr), DW = make(o, DType::f32, {V, C}, dw0);
      o.embedding_forward(*out, *W, *T);
      o.embedding_backward(*DW, *DO, *T);
      return Outs{download(o, *out), download(o, *DW)};
    });
  }
  Ops& g = gpu();
  DevTensor T = make(g, DType::i32, {N}, tok), DO = make(g, DType::f32, {N, C}, dout),
            A = make(g, DType::f32, {V, C}, dw0), B = make(g, DType::f32, {V, C}, dw0);
  g.embedding_backward(*A, *DO, *T);
  g.embedding_backward(*B, *DO, *T);
  CHECK(download(g, *A) == download(g, *B));  // bitwise reproducible
}

TEST_CASE("cuda rmsnorm forward/backward and add_rmsnorm", "[gpu]") {
  for (DType dt : kActDtypes)
    for (int64_t C : {768, 100}) {
      const int64_t N = 37;
      auto x = maybe_round(randn(N * C, 70, 2.f), dt), dl = maybe_round(randn(N * C, 71), dt),
           g = maybe_round(randn(N * C, 72), dt), d0 = maybe_round(randn(N * C, 73), dt);
      compare(dt, tol(dt), "rmsnorm", [&](Ops& o, DType d) {
        DevTensor X = make(o, d, {N, C}, x), Y = make_nan(o, d, {N, C}), R = make_nan(o, DType::f32, {N}),
                  G = make(o, d, {N, C}, g), DX = make(o, d, {N, C}, d0);
        o.rmsnorm_forward(*Y, *R, *X);
        o.rmsnorm_backward(*DX, *G, *X, *R);
        return Outs{download(o, *Y), download(o, *R), download(o, *DX)};
      });
      compare(dt, tol(dt), "add_rmsnorm (aliased residual)", [&](Ops& o, DType d) {
        DevTensor X = make(o, d, {N, C}, x), D = make(o, d, {N, C}, dl), Y = make_nan(o, d, {N, C}),
                  R = make_nan(o, DType::f32, {N});
        o.add_rmsnorm_forward(*X, *Y, *R, *X, *D);
        return Outs{download(o, *X), download(o, *Y), download(o, *R)};
      });
    }
}

TEST_CASE("cuda qknorm_rope forward/backward", "[gpu]") {
  struct Cfg { int64_t B, T; int H, hd; };
  for (Cfg c : {Cfg{2, 37, 3, 64}, Cfg{1, 1030, 2, 128}, Cfg{2, 9, 4, 8}, Cfg{1, 20, 1, 256}})
    for (DType dt : kActDtypes) {
      const int64_t C3 = 3 * int64_t(c.H) * c.hd, n = c.B * c.T * C3;
      auto x = maybe_round(randn(n, 80, 1.5f), dt), g = maybe_round(randn(n, 81), dt);
      compare(dt, tol(dt, 2e-5), "qknorm_rope hd=" + std::to_string(c.hd), [&](Ops& o, DType d) {
        DevTensor X = make(o, d, {c.B, c.T, C3}, x), Y = make_nan(o, d, {c.B, c.T, C3}),
                  R = make_nan(o, DType::f32, {c.B * c.T, 2 * c.H}), G = make(o, d, {c.B, c.T, C3}, g),
                  DX = make_nan(o, d, {c.B, c.T, C3});
        o.qknorm_rope_forward(*Y, *R, *X, c.H, 10000.f);
        o.qknorm_rope_backward(*DX, *G, *X, *R, c.H, 10000.f);
        return Outs{download(o, *Y), download(o, *R), download(o, *DX)};
      });
    }
}

TEST_CASE("cuda attention forward/backward", "[gpu]") {
  struct Cfg { int64_t B, T; int H, hd; };
  for (Cfg c : {Cfg{2, 67, 2, 64}, Cfg{1, 200, 2, 128}, Cfg{2, 33, 3, 16}, Cfg{1, 45, 1, 256},
                Cfg{1, 1, 2, 64}, Cfg{1, 96, 1, 96}})
    for (DType dt : kActDtypes) {
      const int64_t C = int64_t(c.H) * c.hd, n = c.B * c.T * 3 * C;
      auto qkv = maybe_round(randn(n, 90 + c.hd, 1.0f), dt);
      auto dout = maybe_round(randn(c.B * c.T * C, 91), dt);
      const std::string what = "attention B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) +
                               " hd=" + std::to_string(c.hd);
      // Forward, then backward through the backend's own forward outputs (out rounded to dt).
      compare(dt, tol(dt, 5e-5), what, [&](Ops& o, DType d) {
        DevTensor QKV = make(o, d, {c.B, c.T, 3 * C}, qkv), O = make_nan(o, d, {c.B, c.T, C}),
                  L = make_nan(o, DType::f32, {c.B, c.H, c.T}), DO = make(o, d, {c.B, c.T, C}, dout),
                  DQKV = make_nan(o, d, {c.B, c.T, 3 * C});
        o.attention_forward(*O, *L, *QKV, c.H);
        auto out = download(o, *O);
        // Both backends run the backward from the same (GPU-precision) forward output so the
        // comparison isolates the backward.
        std::vector<float> outf(out.begin(), out.end());
        DevTensor O2 = make(o, d, {c.B, c.T, C}, maybe_round(outf, d));
        o.attention_backward(*DQKV, *DO, *QKV, *O2, *L, c.H);
        return Outs{out, download(o, *L), download(o, *DQKV)};
      });
    }
}

// bf16 attention runs through cuDNN's fused SDPA when libcudnn.so.9 loads (attention_cudnn.h).
// Checked here against our own flash kernels (f32 arithmetic) on the same bf16 inputs, at
// shapes up to the 162m model's (T 1024, 6 heads of 128), and mixed: the native backward fed
// with cuDNN's forward output and log-sum-exp gives cuDNN's gradients (one lse convention).
TEST_CASE("cuda bf16 attention: cuDNN against the native kernels", "[gpu]") {
  auto* cuda_ops = dynamic_cast<CudaOps*>(&gpu());
  REQUIRE(cuda_ops != nullptr);
  cuda::CudnnAttention& cudnn = cuda_ops->cudnn_attention();
  struct Cfg { int B, T, H, hd; };
  for (Cfg c : {Cfg{2, 256, 2, 128}, Cfg{1, 1024, 6, 128}, Cfg{1, 130, 2, 64}, Cfg{1, 64, 1, 256}}) {
    const int64_t C = int64_t(c.H) * c.hd, n = int64_t(c.B) * c.T * 3 * C;
    const std::string what = "cudnn attention B=" + std::to_string(c.B) + " T=" +
                             std::to_string(c.T) + " H=" + std::to_string(c.H) +
                             " hd=" + std::to_string(c.hd);
    auto qkv = maybe_round(randn(n, 300 + c.hd + c.T, 1.0f), DType::bf16);
    auto dout = maybe_round(randn(n / 3, 301 + c.T), DType::bf16);
    Ops& o = gpu();
    const DType d = DType::bf16;
    const Shape s3{c.B, c.T, 3 * C}, s1{c.B, c.T, C}, sl{c.B, c.H, c.T};
    DevTensor QKV = make(o, d, s3, qkv), DO = make(o, d, s1, dout);
    DevTensor O(o, d, s1), L(o, DType::f32, sl), DQKV(o, d, s3);
    // Poison the outputs: every element must be written.
    o.fill(*O, NAN); o.fill(*L, NAN); o.fill(*DQKV, NAN);
    const bool used_fwd = cudnn.forward(O->data, static_cast<float*>(L->data), QKV->data, c.B,
                                        c.T, c.H, c.hd, cuda_ops->stream());
    if (!used_fwd) {
      WARN(what << ": cuDNN not used (not available or no engine): native kernels only");
      continue;
    }
    REQUIRE(cudnn.backward(DQKV->data, DO->data, QKV->data, O->data,
                           static_cast<const float*>(L->data), c.B, c.T, c.H, c.hd,
                           cuda_ops->stream()));
    // Native: forced by calling the kernels through a backend built with MOUSSE_ATTENTION=native.
    static std::unique_ptr<Ops> native = [] {
      setenv("MOUSSE_ATTENTION", "native", 1);
      auto ops = make_cuda_ops();
      dynamic_cast<CudaOps&>(*ops).cudnn_attention();  // reads MOUSSE_ATTENTION now
      unsetenv("MOUSSE_ATTENTION");
      return ops;
    }();
    {
      DevTensor Q2 = make(*native, d, s3, qkv), D2 = make(*native, d, s1, dout);
      DevTensor O2 = make_nan(*native, d, s1), L2 = make_nan(*native, DType::f32, sl), G2 = make_nan(*native, d, s3),
          Gmix = make_nan(*native, d, s3);
      native->attention_forward(*O2, *L2, *Q2, c.H);
      native->attention_backward(*G2, *D2, *Q2, *O2, *L2, c.H);
      // Mixed: cuDNN's forward outputs into the native backward.
      DevTensor Oc = make(*native, d, s1, [&] { auto v = download(o, *O); return std::vector<float>(v.begin(), v.end()); }());
      DevTensor Lc = make(*native, DType::f32, sl, [&] { auto v = download(o, *L); return std::vector<float>(v.begin(), v.end()); }());
      native->attention_backward(*Gmix, *D2, *Q2, *Oc, *Lc, c.H);
      expect_close(download(o, *O), download(*native, *O2), 2e-2, what + " out");
      expect_close(download(o, *L), download(*native, *L2), 1e-3, what + " lse");
      expect_close(download(o, *DQKV), download(*native, *G2), 3e-2, what + " dqkv");
      expect_close(download(*native, *Gmix), download(o, *DQKV), 3e-2, what + " dqkv (mixed)");
    }
  }
}

TEST_CASE("cuda classifier (loss, in-place gradient, padded columns)", "[gpu]") {
  struct Cfg { int64_t N, Vp, V; };
  for (Cfg c : {Cfg{7, 128, 100}, Cfg{4, 50304, 50257}})
    for (DType dt : kActDtypes)
      for (bool grad : {true, false}) {
        auto logits = maybe_round(randn(c.N * c.Vp, 100, 3.f), dt);
        std::vector<float> tgt(c.N);
        for (int64_t i = 0; i < c.N; i++) tgt[i] = float((i * 7919) % c.V);
        compare(dt, dt == DType::bf16 ? 2e-2 : 2e-5, "classifier", [&](Ops& o, DType d) {
          DevTensor Lg = make(o, d, {c.N, c.Vp}, logits), T = make(o, DType::i32, {c.N}, tgt),
                    Ls = make_nan(o, DType::f32, {c.N});
          o.classifier(*Ls, *Lg, *T, c.V, 1.f / c.N, grad);
          return Outs{download(o, *Ls), download(o, *Lg)};
        });
      }
}

// ------------------------------------------------------------------ optimizer ops

// f32 state with f32 / bf16 gradients and f64 state; skip 1 starts every tensor one element
// into its allocation (not 16-byte aligned: the scalar path), skip 0 takes the vector path.
TEST_CASE("cuda adamw and lion updates", "[gpu]") {
  const int64_t n = 4099;
  auto p = randn(n, 110), g = randn(n, 111), m = randn(n, 112, 0.1f), v = randu(n, 113, 0.f, 0.2f);
  AdamWArgs aa{1e-3f, 0.9f, 0.95f, 1e-8f, 0.01f, 1 - 0.9f * 0.9f, 1 - 0.95f * 0.95f, 0.5f};
  LionArgs la{3e-4f, 0.95f, 0.98f, 0.1f, 2.f};
  struct Case { DType state, grad; };
  for (Case c : {Case{DType::f32, DType::f32}, Case{DType::f32, DType::bf16}, Case{DType::f64, DType::f64}})
    for (int64_t skip : {0, 1}) {
      auto gr = maybe_round(g, c.grad);
      const std::string what = std::string("adamw/lion state ") + dtype_name(c.state) + " grad " +
                               dtype_name(c.grad) + " skip " + std::to_string(skip);
      compare(c.state, c.state == DType::f64 ? 1e-12 : 1e-5, what, [&](Ops& o, DType d) {
        const DType gdt = o.device() == Device::cpu ? d : c.grad;
        auto at = [&](DType dt, const std::vector<float>& init) {  // skip elements in
          std::vector<float> full(size_t(n + skip), 0.f);
          std::copy(init.begin(), init.end(), full.begin() + skip);
          return make(o, dt, {n + skip}, full);
        };
        DevTensor P = at(d, p), G = at(gdt, gr), M = at(d, m), V = at(d, v), P2 = at(d, p), M2 = at(d, m);
        auto view = [&](const DevTensor& t) { return t->slice(skip, Shape{n}); };
        o.adamw_update(view(P), view(G), view(M), view(V), aa);
        o.lion_update(view(P2), view(G), view(M2), la);
        return Outs{download(o, view(P)), download(o, view(M)), download(o, view(V)),
                    download(o, view(P2)), download(o, view(M2))};
      });
    }
}

// A fused update writes the bf16 working copy as the separate flat copy_stochastic would: the
// same weights, state and copy bit for bit, with the parameter at offsets that take the 16-byte
// vector path (0, 8) and the scalar one (1), and a length with a vector tail.
TEST_CASE("cuda adamw and lion with the fused bf16 compute copy equal update + copy_stochastic",
          "[gpu]") {
  Ops& o = gpu();
  const int64_t n = 4099, flat = n + 16;
  const uint64_t seed = 0x5eed1234ull;
  auto p = randn(flat, 130, 0.3f), g = randn(flat, 131), m = randn(flat, 132, 0.1f),
       v = randu(flat, 133, 0.f, 0.2f);
  AdamWArgs aa{1e-3f, 0.9f, 0.95f, 1e-8f, 0.01f, 1 - 0.9f * 0.9f, 1 - 0.95f * 0.95f, 0.5f};
  LionArgs la{3e-4f, 0.95f, 0.98f, 0.1f, 2.f};
  for (bool lion : {false, true})
    for (int64_t off : {int64_t(0), int64_t(1), int64_t(8)}) {
      DevTensor Pf = make(o, DType::f32, {flat}, p), G = make(o, DType::f32, {flat}, g),
                Mf = make(o, DType::f32, {flat}, m), Vf = make(o, DType::f32, {flat}, v),
                Cf = make(o, DType::bf16, {flat}, p);
      DevTensor Ps = make(o, DType::f32, {flat}, p), Ms = make(o, DType::f32, {flat}, m),
                Vs = make(o, DType::f32, {flat}, v), Cs = make(o, DType::bf16, {flat}, p);
      auto at = [&](const DevTensor& t) { return t->slice(off, Shape{n}); };
      const ComputeCopy fused{at(Cf), seed, off};
      if (lion) {
        o.lion_update(at(Pf), at(G), at(Mf), la, fused);
        o.lion_update(at(Ps), at(G), at(Ms), la);
      } else {
        o.adamw_update(at(Pf), at(G), at(Mf), at(Vf), aa, fused);
        o.adamw_update(at(Ps), at(G), at(Ms), at(Vs), aa);
      }
      o.copy_stochastic(*Cs, *Ps, seed);  // the whole flat copy, as sync_compute_weights does
      const std::string what = std::string(lion ? "lion" : "adamw") + " offset " + std::to_string(off);
      INFO(what);
      CHECK(download(o, *Pf) == download(o, *Ps));
      CHECK(download(o, *Mf) == download(o, *Ms));
      if (!lion) CHECK(download(o, *Vf) == download(o, *Vs));
      const auto cf = download(o, at(Cf)), cs = download(o, at(Cs));
      CHECK(cf == cs);
      // and it is a stochastic rounding of the new weights: within one bf16 ulp, not all nearest
      const auto pn = download(o, at(Ps));
      int64_t not_nearest = 0;
      for (int64_t i = 0; i < n; i++) {
        int e = 0;
        std::frexp(pn[size_t(i)], &e);
        const double ulp = std::ldexp(1.0, e - 8);  // bf16 spacing at |p|: 7 stored bits
        CHECK(std::fabs(cf[size_t(i)] - pn[size_t(i)]) <= ulp);
        not_nearest += std::fabs(cf[size_t(i)] - pn[size_t(i)]) > 0.5 * ulp;
      }
      CHECK(not_nearest > n / 10);
      // elements outside the parameter's slice are untouched
      CHECK(download(o, Cf->slice(off + n, Shape{flat - off - n})) ==
            download(o, make(o, DType::bf16, {flat}, p)->slice(off + n, Shape{flat - off - n})));
    }
  // A copy in the weights' own dtype is a plain copy; a wrong dtype is refused with the op's name.
  DevTensor P = make(o, DType::f32, {n}, p), G = make(o, DType::f32, {n}, g),
            M = make(o, DType::f32, {n}, m), C(o, DType::f32, {n}), Bad(o, DType::f64, {n});
  o.lion_update(*P, *G, *M, la, ComputeCopy{*C, seed, 0});
  CHECK(download(o, *C) == download(o, *P));
  CHECK_THROWS_WITH(o.lion_update(*P, *G, *M, la, ComputeCopy{*Bad, seed, 0}),
                    Catch::Contains("lion_update") && Catch::Contains("bf16"));
}

TEST_CASE("cuda ema_square, adam_direction, pow_clamped, scale_rows_cols", "[gpu]") {
  for (DType dt : {DType::f32, DType::f64}) {
    const int64_t R = 37, C = 53, n = R * C;
    auto x = randn(n, 120), v = randu(n, 121, 0.f, 1.f), m = randn(n, 122);
    auto rs = randu(R, 123, 0.5f, 2.f), cs = randu(C, 124, 0.5f, 2.f), e = randu(n, 125, -1e-3f, 2.f);
    compare(dt, dt == DType::f64 ? 1e-12 : 1e-5, "optimizer elementwise", [&](Ops& o, DType d) {
      DevTensor X = make(o, d, {R, C}, x), V = make(o, d, {R, C}, v), M = make(o, d, {R, C}, m),
                D(o, d, {R, C}), Pw(o, d, {R, C}), E = make(o, d, {R, C}, e),
                RS = make(o, d, {R}, rs), CS = make(o, d, {C}, cs), S1(o, d, {R, C}), S2(o, d, {R, C}),
                S3 = make(o, d, {R, C}, x);
      o.ema_square(*V, *X, 0.95);
      o.adam_direction(*D, *M, *V, 1e-8, 0.3, 0.1);
      o.pow_clamped(*Pw, *E, -0.125, 1e-5);
      o.scale_rows_cols(*S1, *X, *RS, *CS);
      o.scale_rows_cols(*S2, *X, Tensor{}, *CS);
      o.scale_rows_cols(*S3, *S3, *RS, Tensor{});  // aliased
      return Outs{download(o, *V), download(o, *D), download(o, *Pw), download(o, *S1),
                  download(o, *S2), download(o, *S3)};
    });
    // a stack [3, R, C] with per-matrix scales (Mousse's group stacks): rows [3R], cols [3C]
    auto xs = randn(3 * n, 126), rss = randu(3 * R, 127, 0.5f, 2.f), css = randu(3 * C, 128, 0.5f, 2.f);
    compare(dt, dt == DType::f64 ? 1e-12 : 1e-5, "scale_rows_cols stack", [&](Ops& o, DType d) {
      DevTensor X = make(o, d, {3, R, C}, xs), RS = make(o, d, {3 * R}, rss),
                CS = make(o, d, {3 * C}, css), Y = make_nan(o, d, {3, R, C}), Z = make_nan(o, d, {3, R, C});
      o.scale_rows_cols(*Y, *X, *RS, *CS);
      o.scale_rows_cols(*Z, *X, Tensor{}, *CS);
      return Outs{download(o, *Y), download(o, *Z)};
    });
  }
}

TEST_CASE("cuda add_to_diagonal, trace, transpose, gather_rows/columns, column_dots", "[gpu]") {
  for (DType dt : {DType::f32, DType::f64}) {
    const int64_t n = 45, R = 70, C = 33;
    auto a = randn(n * n, 130), b = randn(R * C, 131);
    std::vector<float> ci = {5, 0, 32, 7, 7, 1}, ri = {69, 3, 0, 12};
    DevTensor Ac = make(cpu(), dt, {n, n}, a), Ag = make(gpu(), dt, {n, n}, a);
    CHECK(gpu().trace(*Ag) == Approx(cpu().trace(*Ac)).epsilon(1e-9).margin(1e-9));
    compare(dt, 1e-12, "diag/transpose/gather", [&](Ops& o, DType d) {
      DevTensor A = make(o, d, {n, n}, a), B = make(o, d, {R, C}, b), BT = make_nan(o, d, {C, R}),
                CI = make(o, DType::i32, {int64_t(ci.size())}, ci),
                RI = make(o, DType::i32, {int64_t(ri.size())}, ri),
                GC = make_nan(o, d, {R, int64_t(ci.size())}), GR = make_nan(o, d, {int64_t(ri.size()), C});
      o.add_to_diagonal(*A, 0.25);
      o.transpose(*BT, *B);
      o.gather_columns(*GC, *B, *CI);
      o.gather_rows(*GR, *B, *RI);
      return Outs{download(o, *A), download(o, *BT), download(o, *GC), download(o, *GR)};
    });
    // column_dots: rows not a multiple of the 32 row-threads, columns not of the 32-wide blocks
    auto c = randn(R * C, 132);
    compare(dt, dt == DType::f64 ? 1e-12 : 1e-6, "column_dots", [&](Ops& o, DType d) {
      DevTensor B = make(o, d, {R, C}, b), Cm = make(o, d, {R, C}, c), D = make_nan(o, d, {C});
      o.column_dots(*D, *B, *Cm);
      return Outs{download(o, *D)};
    });
  }
}

namespace {
// A random symmetric PSD matrix with a spread spectrum (plus a rank-deficient variant).
std::vector<float> spd(int64_t n, uint64_t seed, int64_t rank) {
  auto g = randn(n * rank, seed);
  std::vector<float> a(n * n, 0.f);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t k = 0; k < rank; k++) s += double(g[i * rank + k]) * g[j * rank + k];
      a[i * n + j] = float(s / rank);
    }
  return a;
}
}  // namespace

TEST_CASE("cuda eigh (row-major, eigenvectors in columns) and qr_orthonormal", "[gpu]") {
  for (DType dt : {DType::f32, DType::f64})
    for (int64_t rank : {64, 20}) {
      const int64_t n = 64;
      auto a = spd(n, 140 + rank, rank);
      // Only the lower triangle is read: poison the upper triangle.
      auto ap = a;
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) ap[i * n + j] = 1e3f;
      std::vector<double> wc, wg, vg;
      {
        Ops& o = cpu();
        DevTensor A = make(o, dt, {n, n}, a), V = make_nan(o, dt, {n, n}), W = make_nan(o, dt, {n});
        REQUIRE(o.eigh(*V, *W, *A) == 0);
        wc = download(o, *W);
      }
      {
        Ops& o = gpu();
        DevTensor A = make(o, dt, {n, n}, ap), V = make_nan(o, dt, {n, n}), W = make_nan(o, dt, {n});
        REQUIRE(o.eigh(*V, *W, *A) == 0);
        wg = download(o, *W);
        vg = download(o, *V);
        CHECK(download(o, *A) == download(o, *make(o, dt, {n, n}, ap)));  // a unchanged
      }
      expect_close(wg, wc, dt == DType::f64 ? 1e-10 : 2e-5, "eigh eigenvalues");
      // A v_j = w_j v_j for each column j, and VᵀV = I.
      double worst = 0, worst_orth = 0;
      for (int64_t j = 0; j < n; j++) {
        for (int64_t i = 0; i < n; i++) {
          double av = 0;
          for (int64_t k = 0; k < n; k++) av += double(a[i * n + k]) * vg[k * n + j];
          worst = std::max(worst, std::fabs(av - wg[j] * vg[i * n + j]));
        }
        for (int64_t k = 0; k < n; k++) {
          double d = 0;
          for (int64_t i = 0; i < n; i++) d += vg[i * n + j] * vg[i * n + k];
          worst_orth = std::max(worst_orth, std::fabs(d - (j == k ? 1.0 : 0.0)));
        }
      }
      const double scale = *std::max_element(wc.begin(), wc.end());
      CHECK(worst <= (dt == DType::f64 ? 1e-10 : 1e-4) * scale);
      CHECK(worst_orth <= (dt == DType::f64 ? 1e-10 : 1e-4));
    }
  {  // non-finite input: nonzero return
    Ops& o = gpu();
    std::vector<float> bad(16, 1.f);
    bad[5] = NAN;
    DevTensor A = make(o, DType::f32, {4, 4}, bad), V(o, DType::f32, {4, 4}), W(o, DType::f32, {4});
    CHECK(o.eigh(*V, *W, *A) != 0);
  }
  for (DType dt : {DType::f32, DType::f64})
    for (int64_t m : {70, 30}) {
      const int64_t n = 30;
      auto a = randn(m * n, 150 + m);
      compare(dt, dt == DType::f64 ? 1e-10 : 1e-4, "qr_orthonormal", [&](Ops& o, DType d) {
        DevTensor A = make(o, d, {m, n}, a), Q = make_nan(o, d, {m, n});
        o.qr_orthonormal(*Q, *A);
        return Outs{download(o, *Q)};
      });
    }
}

TEST_CASE("cuda cholesky_batched and solve_upper_right_batched (Cholesky QR's pieces)", "[gpu]") {
  for (DType dt : {DType::f32, DType::f64})
    for (int64_t n : {40, 300}) {  // 300: several of cuSOLVER's blocks
      const int64_t B = 4, m = 70;
      // Slices 0, 1: SPD (spread spectrum, full rank, plus 0.1 I); 2: indefinite; 3: a NaN read;
      // 1 also has a NaN in the lower triangle, which the op must ignore.
      std::vector<float> a;
      for (int64_t b = 0; b < B; b++) {
        std::vector<float> s = spd(n, 600 + b + n, n);
        for (int64_t i = 0; i < n; i++) s[size_t(i * n + i)] += (b == 2 ? -5.f : 0.1f);
        a.insert(a.end(), s.begin(), s.end());
      }
      a[size_t(3 * n * n + 2)] = NAN;          // slice 3, row 0, col 2: the upper triangle read
      a[size_t(1 * n * n + 5 * n + 1)] = NAN;  // slice 1, row 5, col 1: ignored (lower triangle)
      std::vector<int> status_cpu, status_gpu;
      auto run = [&](Ops& o, DType d, std::vector<int>& status) {
        DevTensor A = make(o, d, {B, n, n}, a);
        status = o.cholesky_batched(*A);
        std::vector<double> r = download(o, *A);
        // x R⁻¹ with the two good factors (a [2, m, n] x against the first two slices)
        auto x = randn(size_t(2 * m * n), 620 + n);
        DevTensor X = make(o, d, {2, m, n}, x), R2(o, d, {2, n, n});
        o.copy(*R2, (*A).slice(0, Shape{2, n, n}));
        o.solve_upper_right_batched(*X, *R2);
        r.resize(size_t(2 * n * n));  // the failed slices' contents are unspecified
        return Outs{r, download(o, *X)};
      };
      const Outs want = run(cpu(), dt, status_cpu);
      const Outs got = run(gpu(), dt, status_gpu);
      INFO("n " << n);
      CHECK(status_gpu[0] == 0);
      CHECK(status_gpu[1] == 0);
      CHECK(status_gpu[2] > 0);
      CHECK(status_gpu[3] == -1);  // non-finite input, as the CPU reports it
      CHECK(status_cpu[3] == -1);
      CHECK(status_cpu[1] == 0);
      CHECK(status_cpu[2] > 0);
      expect_all_close(got, want, dt == DType::f64 ? 1e-10 : 1e-3,
                       std::string("cholesky/solve [") + dtype_name(dt) + "]");
    }
}

TEST_CASE("cuda device scalars: sum_squares_batched, trace_to, scale_by_ratio", "[gpu]") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    const int64_t B = 5, R = 70, C = 300;  // several blocks per slice
    auto x = maybe_round(randn(B * R * C, 400), dt);
    auto sq = randn(33 * 33, 401);
    const DType sdt = dt == DType::f64 ? DType::f64 : DType::f32;
    auto run = [&](Ops& o, DType d, DType xd) {
      DevTensor X = make(o, xd, {B, R, C}, x), S = make_nan(o, sdt, {B});
      DevTensor One = make_nan(o, S->dtype, {1}), A = make(o, d, {33, 33}, sq), Tr = make_nan(o, S->dtype, {1});
      o.sum_squares_batched(*S, *X);
      o.sum_squares_batched(*One, *X);
      o.trace_to(*Tr, *A);
      // normalise every slice (NS form), then graft slice norms back (power 0.5, with num)
      DevTensor Y = make(o, xd, {B, R, C}, x);
      o.scale_by_ratio(*Y, Tensor{}, *S, 0.5, 1.0, 1.02, 1e-6);
      DevTensor Z = make(o, xd, {B, R, C}, x), S2(o, S->dtype, {B});
      o.fill(*S2, 4.0);
      o.scale_by_ratio(*Z, *S2, *S, 0.5, 0.5, 1.0, 0.0);
      DevTensor W = make(o, d, {33, 33}, sq);
      o.scale_by_ratio(*W, Tensor{}, *Tr, 1.0, 33.0, 1.0, 1e-5);  // trace normalisation
      return Outs{download(o, *S), download(o, *One), download(o, *Tr), download(o, *Y),
                  download(o, *Z), download(o, *W)};
    };
    // The CPU has no bf16: it gets the same (rounded) values in f32.
    const DType cd = dt == DType::f64 ? DType::f64 : DType::f32;
    const Outs want = run(cpu(), cd, cd);
    const Outs got = run(gpu(), dt == DType::bf16 ? DType::f32 : dt, dt);
    expect_all_close(got, want, dt == DType::bf16 ? 1e-2 : (dt == DType::f64 ? 1e-12 : 1e-5),
                     std::string("device scalars [") + dtype_name(dt) + "]");
  }
  {  // a zero slice: the denominator 0 leaves it unchanged (grafting guard), no NaN
    Ops& o = gpu();
    DevTensor X = make_zero(o, DType::f32, {2, 8}), S(o, DType::f32, {2});
    o.sum_squares_batched(*S, *X);
    o.scale_by_ratio(*X, *S, *S, 0.5, 1.0, 1.0, 0.0);
    for (double v : download(o, *X)) CHECK(v == 0.0);
  }
}

TEST_CASE("cuda eigh_batched on a worker backend after reserve_eigh_batched", "[gpu]") {
  // Mousse's overlapped refresh: a second CudaOps (small cuBLASLt workspace and scratch) whose
  // cuSOLVER workspace is grown up front, so that the decomposition itself allocates nothing
  // (device memory in use unchanged), with the main backend's results.
  Ops& o = gpu();
  std::unique_ptr<Ops> worker = o.make_worker();
  worker->bind_thread();
  {  // One unmeasured decomposition first: whatever a fresh cuSOLVER handle allocates on its
     // first call (once per handle, not per problem) is not what the reservation is about.
    const std::vector<float> a{2.f, 1.f, 1.f, 3.f};
    DevTensor A = make(o, DType::f32, {1, 2, 2}, a), V = make_nan(o, DType::f32, {1, 2, 2}),
              W = make_nan(o, DType::f32, {1, 2});
    worker->reserve_eigh_batched(*V, *W, *A);
    CHECK(worker->eigh_batched(*V, *W, *A)[0] == 0);
    worker->synchronize();
  }
  // The check is on net memory: a cudaMalloc/cudaFree pair inside the call would pass it (an
  // nsys trace of the overlapped refresh is the test for that; see docs/results/gpu-h100.md).
  for (int64_t n : {96, 768}) {
    const int64_t B = 3;
    std::vector<float> a(size_t(B * n * n));
    for (int64_t b = 0; b < B; b++) {
      auto g = randn(size_t(n * n), 900 + b + n);
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
          a[size_t(b * n * n + i * n + j)] = g[size_t(i * n + j)] + g[size_t(j * n + i)];
    }
    DevTensor A = make(o, DType::f32, {B, n, n}, a), V = make_nan(o, DType::f32, {B, n, n}),
              W = make_nan(o, DType::f32, {B, n});
    DevTensor A2 = make(o, DType::f32, {B, n, n}, a), V2 = make_nan(o, DType::f32, {B, n, n}),
              W2 = make_nan(o, DType::f32, {B, n});
    // The main backend first: it loads the kernels (lazily loaded modules take device memory
    // on first use, which is not the worker's allocation), as Mousse's first refresh does.
    const std::vector<int> st2 = o.eigh_batched(*V2, *W2, *A2);
    worker->reserve_eigh_batched(*V, *W, *A);
    worker->synchronize();
    const size_t used_before = o.device_memory_used();
    const std::vector<int> st = worker->eigh_batched(*V, *W, *A);
    worker->synchronize();
    const size_t used_after = o.device_memory_used();
    INFO("n " << n << ": device memory in use " << used_before << " -> " << used_after);
    CHECK(used_after == used_before);
    for (int64_t b = 0; b < B; b++) {
      CHECK(st[size_t(b)] == 0);
      CHECK(st2[size_t(b)] == 0);
    }
    expect_close(download(o, *W), download(o, *W2), 1e-6, "worker vs main eigenvalues");
  }
}

TEST_CASE("cuda eigh_batched (one synchronisation, failures per slice)", "[gpu]") {
  for (DType dt : {DType::f32, DType::f64})
    for (int64_t n : {40, 200}) {
      const int64_t B = 4;
      std::vector<float> a(size_t(B * n * n));
      for (int64_t b = 0; b < B; b++) {  // symmetric, well separated spectrum
        auto g = randn(size_t(n * n), 500 + b + n);
        for (int64_t i = 0; i < n; i++)
          for (int64_t j = 0; j < n; j++)
            a[size_t(b * n * n + i * n + j)] = g[size_t(i * n + j)] + g[size_t(j * n + i)];
      }
      Ops& o = gpu();
      DevTensor A = make(o, dt, {B, n, n}, a), V = make_nan(o, dt, {B, n, n}), W = make_nan(o, dt, {B, n});
      const std::vector<int> st = o.eigh_batched(*V, *W, *A);
      REQUIRE(st.size() == size_t(B));
      const auto vg = download(o, *V), wg = download(o, *W);
      for (int64_t b = 0; b < B; b++) {
        CHECK(st[size_t(b)] == 0);
        // eigenvalues as the CPU's, and A v_j = w_j v_j with orthonormal columns
        std::vector<float> ab(a.begin() + b * n * n, a.begin() + (b + 1) * n * n);
        Ops& c = cpu();
        DevTensor Ac = make(c, dt, {n, n}, ab), Vc(c, dt, {n, n}), Wc(c, dt, {n});
        REQUIRE(c.eigh(*Vc, *Wc, *Ac) == 0);
        const auto wc = download(c, *Wc);
        std::vector<double> wgb(wg.begin() + b * n, wg.begin() + (b + 1) * n);
        expect_close(wgb, wc, dt == DType::f64 ? 1e-10 : 2e-5, "eigh_batched eigenvalues");
        double worst = 0, worst_orth = 0, scale = 0;
        for (double e : wc) scale = std::max(scale, std::fabs(e));
        for (int64_t j = 0; j < n; j++) {
          for (int64_t i = 0; i < n; i++) {
            double av = 0;
            for (int64_t k = 0; k < n; k++)
              av += double(ab[size_t(i * n + k)]) * vg[size_t(b * n * n + k * n + j)];
            worst = std::max(worst, std::fabs(av - wgb[size_t(j)] * vg[size_t(b * n * n + i * n + j)]));
          }
          for (int64_t k = 0; k < n; k++) {
            double d = 0;
            for (int64_t i = 0; i < n; i++)
              d += vg[size_t(b * n * n + i * n + j)] * vg[size_t(b * n * n + i * n + k)];
            worst_orth = std::max(worst_orth, std::fabs(d - (j == k ? 1.0 : 0.0)));
          }
        }
        CHECK(worst <= (dt == DType::f64 ? 1e-10 : 1e-4) * scale);
        CHECK(worst_orth <= (dt == DType::f64 ? 1e-10 : 1e-4));
      }
    }
  {  // a non-finite slice fails alone
    Ops& o = gpu();
    std::vector<float> a(size_t(3 * 16), 0.f);
    for (int b = 0; b < 3; b++)
      for (int i = 0; i < 4; i++) a[size_t(b * 16 + i * 4 + i)] = float(i + 1);
    a[size_t(16 + 5)] = NAN;
    DevTensor A = make(o, DType::f32, {3, 4, 4}, a), V(o, DType::f32, {3, 4, 4}), W(o, DType::f32, {3, 4});
    const std::vector<int> st = o.eigh_batched(*V, *W, *A);
    REQUIRE(st.size() == 3);
    CHECK(st[0] == 0);
    CHECK(st[1] != 0);
    CHECK(st[2] == 0);
    const auto w = download(o, *W);
    CHECK(w[0] == Approx(1.0));
    CHECK(w[11] == Approx(4.0));
  }
}

int main(int argc, char* argv[]) {
  if (!cuda_available()) {
    const size_t n = Catch::getRegistryHub().getTestCaseRegistry().getAllTests().size();
    std::printf("SKIPPED: no usable GPU (cuda_available() == false): %zu GPU op tests not run\n", n);
    std::fflush(stdout);
    return 77;
  }
  std::printf("GPU op tests on %s\n", gpu().name().c_str());
  return Catch::Session().run(argc, argv);
}
