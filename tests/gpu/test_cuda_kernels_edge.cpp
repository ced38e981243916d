// Edge cases of the vectorised memory-bound kernels (cuda/vec.cuh users) against the CPU twins:
// widths not divisible by the vector width (scalar fallback and scalar tails), views whose data
// pointer is not 16-byte aligned (scalar fallback), head dims giving 1- and 2-lane head groups,
// and classifier rows that do / do not fit in shared memory (f32 at Vp = 50304 fits, 60000 not).
// Outputs start as NaN, so an element a kernel path never writes fails the comparison.
//
// Without a usable GPU the executable prints a SKIPPED line and exits 77 (ctest: skipped).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "gpu_test_util.h"

using namespace mousse;
using namespace mousse::gputest;
using Outs = std::vector<std::vector<double>>;

namespace {

template <class F>
void compare(DType dt, const std::string& what, F&& f) {
  const double rtol = dt == DType::bf16 ? 2e-2 : 2e-5;
  const Outs want = f(cpu(), DType::f32);
  const Outs got = f(gpu(), dt);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); i++) {
    REQUIRE(got[i].size() == want[i].size());
    const CloseResult r = closeness(got[i], want[i], rtol);
    INFO(what << " [" << dtype_name(dt) << "] output " << i << ": worst ratio " << r.ratio
              << " at " << r.worst << " got " << r.got << " want " << r.want);
    CHECK(!r.nonfinite);
    CHECK(r.ratio <= 1.0);
  }
}

std::vector<float> maybe_round(std::vector<float> v, DType dt) {
  if (dt == DType::bf16) round_bf16(v);
  return v;
}

const DType kActDtypes[] = {DType::f32, DType::bf16};

// A tensor of shape s that starts `skip` elements into its allocation (skip = 1: a view whose
// data pointer is only element-aligned).
struct Offset {
  DevTensor base;
  Tensor t;
  Offset(Ops& o, DType dt, Shape s, int64_t skip, const std::vector<float>& init)
      : base(o, dt, Shape{s.numel() + skip}) {
    std::vector<float> full(size_t(s.numel() + skip), 0.f);
    std::copy(init.begin(), init.end(), full.begin() + skip);
    upload(o, *base, full);
    t = base->slice(skip, s);
  }
};

}  // namespace

TEST_CASE("relu2: scalar tail and unaligned views", "[gpu]") {
  for (DType dt : kActDtypes)
    for (int64_t skip : {0, 1}) {
      const int64_t n = 5003;  // n % 8 = 3
      auto x = maybe_round(randn(n, 1), dt), g = maybe_round(randn(n, 2), dt);
      compare(dt, "relu2 skip=" + std::to_string(skip), [&](Ops& o, DType d) {
        Offset in(o, d, {n}, skip, x), go(o, d, {n}, skip, g);
        DevTensor out = make_nan(o, d, {n}), din = make_nan(o, d, {n});
        o.relu2_forward(*out, in.t);
        o.relu2_backward(*din, go.t, in.t);
        return Outs{download(o, *out), download(o, *din)};
      });
    }
}

TEST_CASE("rmsnorm, add_rmsnorm: unaligned views", "[gpu]") {
  for (DType dt : kActDtypes) {
    const int64_t N = 9, C = 768;
    auto x = maybe_round(randn(N * C, 3, 2.f), dt), dl = maybe_round(randn(N * C, 4), dt),
         g = maybe_round(randn(N * C, 5), dt), d0 = maybe_round(randn(N * C, 6), dt);
    compare(dt, "rmsnorm unaligned", [&](Ops& o, DType d) {
      Offset X(o, d, {N, C}, 1, x), G(o, d, {N, C}, 1, g), DX(o, d, {N, C}, 1, d0);
      DevTensor Y = make_nan(o, d, {N, C}), R = make_nan(o, DType::f32, {N});
      o.rmsnorm_forward(*Y, *R, X.t);
      o.rmsnorm_backward(DX.t, G.t, X.t, *R);
      return Outs{download(o, *Y), download(o, *R), download(o, DX.t)};
    });
    compare(dt, "add_rmsnorm unaligned", [&](Ops& o, DType d) {
      Offset X(o, d, {N, C}, 1, x);
      DevTensor D = make(o, d, {N, C}, dl), Y = make_nan(o, d, {N, C}),
                R = make_nan(o, DType::f32, {N});
      o.add_rmsnorm_forward(X.t, *Y, *R, X.t, *D);
      return Outs{download(o, X.t), download(o, *Y), download(o, *R)};
    });
  }
}

TEST_CASE("qknorm_rope: head groups of 1 and 2 lanes, unaligned view", "[gpu]") {
  struct Cfg { int64_t B, T; int H, hd; int64_t skip; };
  for (Cfg c : {Cfg{2, 5, 3, 16, 0}, Cfg{1, 7, 2, 32, 0}, Cfg{1, 6, 2, 128, 1}})
    for (DType dt : kActDtypes) {
      const int64_t C3 = 3 * int64_t(c.H) * c.hd, n = c.B * c.T * C3;
      auto x = maybe_round(randn(n, 7, 1.5f), dt), g = maybe_round(randn(n, 8), dt);
      compare(dt, "qknorm_rope hd=" + std::to_string(c.hd), [&](Ops& o, DType d) {
        Offset X(o, d, {c.B, c.T, C3}, c.skip, x);
        DevTensor Y = make_nan(o, d, {c.B, c.T, C3}), R = make_nan(o, DType::f32, {c.B * c.T, 2 * c.H}),
            G = make(o, d, {c.B, c.T, C3}, g), DX = make_nan(o, d, {c.B, c.T, C3});
        o.qknorm_rope_forward(*Y, *R, X.t, c.H, 10000.f);
        o.qknorm_rope_backward(*DX, *G, X.t, *R, c.H, 10000.f);
        return Outs{download(o, *Y), download(o, *R), download(o, *DX)};
      });
    }
}

TEST_CASE("classifier: shared-memory row cache on/off, odd widths", "[gpu]") {
  struct Cfg { int64_t N, Vp, V; DType dt; };
  for (Cfg c : {Cfg{3, 50304, 50257, DType::f32}, Cfg{3, 60000, 59990, DType::f32},
                Cfg{5, 1003, 1000, DType::f32}, Cfg{5, 1003, 1000, DType::bf16},
                Cfg{6, 136, 129, DType::bf16}})
    for (bool grad : {true, false}) {
      auto logits = maybe_round(randn(c.N * c.Vp, 9, 3.f), c.dt);
      std::vector<float> tgt(c.N);
      for (int64_t i = 0; i < c.N; i++) tgt[i] = float((i * 7919) % c.V);
      compare(c.dt, "classifier Vp=" + std::to_string(c.Vp), [&](Ops& o, DType d) {
        DevTensor Lg = make(o, d, {c.N, c.Vp}, logits), T = make(o, DType::i32, {c.N}, tgt),
                  Ls = make_nan(o, DType::f32, {c.N});
        o.classifier(*Ls, *Lg, *T, c.V, 1.f / c.N, grad);
        return Outs{download(o, *Ls), download(o, *Lg)};
      });
    }
}

TEST_CASE("embedding: width not divisible by 8", "[gpu]") {
  const int64_t V = 50, C = 100, N = 77;
  std::vector<float> tok(N);
  for (int64_t i = 0; i < N; i++) tok[i] = float((i * 13) % 9);
  auto wte = randn(V * C, 10), dout = randn(N * C, 11), dw0 = randn(V * C, 12);
  for (DType dt : kActDtypes) {
    auto dr = maybe_round(dout, dt), wr = maybe_round(wte, dt);
    compare(dt, "embedding C=100", [&](Ops& o, DType d) {
      DevTensor W = make(o, d, {V, C}, wr), T = make(o, DType::i32, {N}, tok),
                out = make_nan(o, d, {N, C}),
                DO = make(o, d, {N, C}, dr), DW = make(o, DType::f32, {V, C}, dw0);
      o.embedding_forward(*out, *W, *T);
      o.embedding_backward(*DW, *DO, *T);
      return Outs{download(o, *out), download(o, *DW)};
    });
  }
}

int main(int argc, char* argv[]) {
  if (!cuda_available()) {
    std::printf("SKIPPED: no usable GPU (cuda_available() == false): kernel edge tests not run\n");
    std::fflush(stdout);
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
