// bench-ops-cuda: time per CUDA op at the 162m model's shapes (B=8 by default, T=1024, C=768,
// H=6, hd=128, Vp=50304), with TFLOP/s for matmuls and attention and GB/s for memory-bound ops.
// Usage: bench-ops-cuda [B]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "gpu_test_util.h"

using namespace mousse;
using namespace mousse::gputest;

namespace {

struct Row {
  std::string op, shape;
  double ms, rate;
  const char* unit;
};
std::vector<Row> rows;

double time_ms(Ops& o, const std::function<void()>& f) {
  f();  // warm-up (also first-use workspace growth, algorithm selection)
  o.synchronize();
  int iters = 1;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; i++) f();
    o.synchronize();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (ms > 100.0 || iters >= 1000) return ms / iters;
    iters *= ms < 10.0 ? 8 : 2;
  }
}

void report(const std::string& op, const std::string& shape, double ms, double amount,
            const char* unit) {
  const double rate = amount / (ms * 1e-3) / 1e12 * (unit[0] == 'G' ? 1e3 : 1.0);
  rows.push_back({op, shape, ms, rate, unit});
  std::printf("%-28s %-30s %10.3f ms %10.2f %s\n", op.c_str(), shape.c_str(), ms, rate, unit);
  std::fflush(stdout);
}

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (!cuda_available()) {
    std::printf("SKIPPED: no usable GPU (cuda_available() == false): benchmark not run\n");
    return 77;
  }
  const int64_t B = argc > 1 ? std::atoll(argv[1]) : 8, T = 1024, C = 768, H = 6, hd = 128;
  const int64_t Vp = 50304, V = 50257, N = B * T;
  auto ops = make_cuda_ops();
  Ops& o = *ops;
  std::printf("bench-ops-cuda on %s: B=%lld T=%lld C=%lld H=%lld hd=%lld Vp=%lld\n",
              o.name().c_str(), (long long)B, (long long)T, (long long)C, (long long)H,
              (long long)hd, (long long)Vp);
  const DType bf = DType::bf16, f32 = DType::f32;
  auto rnd = [&](DType dt, Shape s, uint64_t seed, float scale = 1.f) {
    return make(o, dt, s, randn(size_t(s.numel()), seed, scale));
  };

  {  // matmuls (bf16 in, f32 accumulate)
    DevTensor x = rnd(bf, {N, C}, 1), wqkv = rnd(bf, {3 * C, C}, 2, 0.03f), qkv(o, bf, {N, 3 * C});
    DevTensor wfc = rnd(bf, {4 * C, C}, 3, 0.03f), h(o, bf, {N, 4 * C}), wpr = rnd(bf, {C, 4 * C}, 4, 0.02f),
              y(o, bf, {N, C}), dwqkv(o, f32, {3 * C, C}), dx(o, bf, {N, C});
    double fl = 2.0 * N * C * 3 * C;
    report("matmul qkv fwd", dims({N, C, 3 * C}), time_ms(o, [&] { o.matmul(*qkv, *x, false, *wqkv, true); }), fl, "TFLOP/s");
    fl = 2.0 * N * C * 4 * C;
    report("matmul fc fwd", dims({N, C, 4 * C}), time_ms(o, [&] { o.matmul(*h, *x, false, *wfc, true); }), fl, "TFLOP/s");
    report("matmul proj fwd", dims({N, 4 * C, C}), time_ms(o, [&] { o.matmul(*y, *h, false, *wpr, true); }), fl, "TFLOP/s");
    report("matmul proj dinp", dims({N, C, 4 * C}), time_ms(o, [&] { o.matmul(*h, *y, false, *wpr, false); }), fl, "TFLOP/s");
    fl = 2.0 * N * C * 3 * C;
    report("matmul qkv dW (+=, f32)", dims({3 * C, N, C}), time_ms(o, [&] { o.matmul(*dwqkv, *qkv, true, *x, false, 1.f, 1.f); }), fl, "TFLOP/s");
    report("matmul qkv dinp", dims({N, 3 * C, C}), time_ms(o, [&] { o.matmul(*dx, *qkv, false, *wqkv, false); }), fl, "TFLOP/s");
  }
  {  // lm_head + classifier
    DevTensor x = rnd(bf, {N, C}, 5), w = rnd(bf, {Vp, C}, 6, 0.03f), logits(o, bf, {N, Vp}),
              losses(o, f32, {N});
    std::vector<float> tg(N);
    for (int64_t i = 0; i < N; i++) tg[i] = float((i * 7919) % V);
    DevTensor targets = make(o, DType::i32, {N}, tg);
    report("matmul lm_head fwd", dims({N, C, Vp}), time_ms(o, [&] { o.matmul(*logits, *x, false, *w, true); }),
           2.0 * N * C * Vp, "TFLOP/s");
    report("classifier (+grad)", dims({N, Vp}),
           time_ms(o, [&] { o.classifier(*losses, *logits, *targets, V, 1.f / N, true); }),
           2.0 * 2 * N * Vp, "GB/s");
  }
  {  // attention
    DevTensor qkv = rnd(bf, {B, T, 3 * C}, 7), out(o, bf, {B, T, C}), lse(o, f32, {B, H, T}),
              dout = rnd(bf, {B, T, C}, 8), dqkv(o, bf, {B, T, 3 * C}), q2(o, bf, {B, T, 3 * C}),
              rstd(o, f32, {N, 2 * H});
    const double fwd = 4.0 * B * H * T * T * hd / 2;  // causal: half of QKᵀ and PV
    report("attention fwd", dims({B, T, H, hd}), time_ms(o, [&] { o.attention_forward(*out, *lse, *qkv, H); }), fwd, "TFLOP/s");
    report("attention bwd", dims({B, T, H, hd}),
           time_ms(o, [&] { o.attention_backward(*dqkv, *dout, *qkv, *out, *lse, H); }), 2.5 * fwd, "TFLOP/s");
    report("qknorm_rope fwd", dims({N, 3 * C}), time_ms(o, [&] { o.qknorm_rope_forward(*q2, *rstd, *qkv, H, 10000.f); }),
           2.0 * 2 * N * 3 * C, "GB/s");
    report("qknorm_rope bwd", dims({N, 3 * C}),
           time_ms(o, [&] { o.qknorm_rope_backward(*dqkv, *q2, *qkv, *rstd, H, 10000.f); }), 2.0 * 3 * N * 3 * C, "GB/s");
  }
  {  // norms, relu2, embedding
    DevTensor res = rnd(f32, {N, C}, 9), d = rnd(bf, {N, C}, 10), n(o, bf, {N, C}), rstd(o, f32, {N}),
              dres(o, f32, {N, C}), h = rnd(bf, {N, 4 * C}, 11), h2(o, bf, {N, 4 * C});
    report("add_rmsnorm fwd", dims({N, C}), time_ms(o, [&] { o.add_rmsnorm_forward(*res, *n, *rstd, *res, *d); }),
           double(N) * C * (4 + 2 + 4 + 2), "GB/s");
    report("rmsnorm fwd", dims({N, C}), time_ms(o, [&] { o.rmsnorm_forward(*n, *rstd, *res); }), double(N) * C * 6, "GB/s");
    report("rmsnorm bwd", dims({N, C}), time_ms(o, [&] { o.rmsnorm_backward(*dres, *d, *res, *rstd); }),
           double(N) * C * (4 + 2 + 4 + 4), "GB/s");
    report("relu2 fwd", dims({N, 4 * C}), time_ms(o, [&] { o.relu2_forward(*h2, *h); }), double(N) * 4 * C * 4, "GB/s");
    report("relu2 bwd", dims({N, 4 * C}), time_ms(o, [&] { o.relu2_backward(*h2, *h2, *h); }), double(N) * 4 * C * 6, "GB/s");
    std::vector<float> tok(N);
    for (int64_t i = 0; i < N; i++) tok[i] = float((i * 104729) % V);
    DevTensor tokens = make(o, DType::i32, {N}, tok), wte = rnd(f32, {Vp, C}, 12), dwte(o, f32, {Vp, C}), e(o, bf, {N, C});
    o.fill(*dwte, 0.0);
    report("embedding fwd", dims({N, C}), time_ms(o, [&] { o.embedding_forward(*e, *wte, *tokens); }), double(N) * C * 6, "GB/s");
    report("embedding bwd", dims({N, C}), time_ms(o, [&] { o.embedding_backward(*dwte, *e, *tokens); }), double(N) * C * 10, "GB/s");
  }
  {  // optimizer elementwise at 162M parameters
    const int64_t P = 162200000;
    DevTensor p = rnd(f32, {P}, 13, 0.02f), g = rnd(f32, {P}, 14, 1e-3f), m(o, f32, {P}), v(o, f32, {P}), pb(o, bf, {P});
    o.fill(*m, 0.0);
    o.fill(*v, 0.0);
    AdamWArgs aa{1e-3f, 0.9f, 0.95f, 1e-8f, 0.01f, 0.1f, 0.05f, 1.f};
    LionArgs la{1e-4f, 0.95f, 0.98f, 0.f, 1.f};
    report("adamw_update", dims({P}), time_ms(o, [&] { o.adamw_update(*p, *g, *m, *v, aa); }), double(P) * 28, "GB/s");
    report("lion_update", dims({P}), time_ms(o, [&] { o.lion_update(*p, *g, *m, la); }), double(P) * 20, "GB/s");
    // The same with the bf16 working copy written in the update (what the trainer runs on one
    // GPU with AdamW / Lion): compare with update + copy_stochastic below.
    const ComputeCopy cc{*pb, 1, 0};
    report("adamw_update + bf16 copy", dims({P}), time_ms(o, [&] { o.adamw_update(*p, *g, *m, *v, aa, cc); }), double(P) * 30, "GB/s");
    report("lion_update + bf16 copy", dims({P}), time_ms(o, [&] { o.lion_update(*p, *g, *m, la, cc); }), double(P) * 22, "GB/s");
    report("copy_stochastic f32->bf16", dims({P}), time_ms(o, [&] { o.copy_stochastic(*pb, *p, 1); }), double(P) * 6, "GB/s");
    report("sum_squares (sync)", dims({P}), time_ms(o, [&] { o.sum_squares(*g); }), double(P) * 4, "GB/s");
  }
  {  // optimizer linear algebra (Mousse / SOAP / Muon)
    for (int64_t n : {768, 3072}) {
      auto a = randn(size_t(n * n), 15);
      DevTensor g = make(o, f32, {n, n}, a), s(o, f32, {n, n}), vec(o, f32, {n, n}), w(o, f32, {n});
      o.matmul(*s, *g, false, *g, true, 1.f / n);  // SPD
      o.add_to_diagonal(*s, 1e-3);
      report("eigh f32 (sync)", dims({n, n}), time_ms(o, [&] { o.eigh(*vec, *w, *s); }), 0.0, "TFLOP/s");
      report("qr_orthonormal f32", dims({n, n}), time_ms(o, [&] { o.qr_orthonormal(*vec, *g); }),
             4.0 / 3.0 * n * n * n * 2, "TFLOP/s");
    }
    // Mousse's / SOAP's statistics at the 162m fc shape (G 3072×768): G Gᵀ in f32 (CUDA cores)
    // and in TF32 (tensor cores, stats_dtype "auto" on CUDA)
    DevTensor gs = rnd(f32, {4 * C, C}, 18, 1e-3f), ls(o, f32, {4 * C, 4 * C});
    o.fill(*ls, 0.0);
    report("stats G Gᵀ f32", dims({4 * C, 4 * C, C}),
           time_ms(o, [&] { o.matmul(*ls, *gs, false, *gs, true, 0.05, 0.95); }),
           2.0 * 4 * C * 4 * C * C, "TFLOP/s");
    report("stats G Gᵀ tf32", dims({4 * C, 4 * C, C}),
           time_ms(o, [&] { o.matmul_tf32(*ls, *gs, false, *gs, true, 0.05, 0.95); }),
           2.0 * 4 * C * 4 * C * C, "TFLOP/s");
    DevTensor x = rnd(bf, {C, 4 * C}, 16, 0.01f), aa(o, bf, {C, C});
    report("NS5 step X Xᵀ (bf16)", dims({C, 4 * C, C}), time_ms(o, [&] { o.matmul(*aa, *x, false, *x, true); }),
           2.0 * C * C * 4 * C, "TFLOP/s");
    DevTensor xb3 = rnd(bf, {12, C, C}, 17, 0.03f), yb3(o, bf, {12, C, C});
    report("matmul_batched 12x768^3", dims({12, C, C, C}),
           time_ms(o, [&] { o.matmul_batched(*yb3, *xb3, false, *xb3, true); }), 2.0 * 12 * C * C * C, "TFLOP/s");
  }
  std::printf("\n%-28s %-30s %10s %12s\n", "op", "shape", "ms", "rate");
  for (const Row& r : rows)
    std::printf("%-28s %-30s %10.3f %8.2f %s\n", r.op.c_str(), r.shape.c_str(), r.ms, r.rate, r.unit);
  return 0;
}
