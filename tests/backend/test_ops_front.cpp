// The Ops fronts give each op's contract one home: a backend that computes nothing (FakeOps:
// every name_impl, declared from the MOUSSE_OPS list, only records its call and arguments) shows
// that a front rejects bad arguments, naming the op, before any backend code runs; that good
// arguments reach the backend once, unchanged, default arguments included; and that ProfilingOps,
// generated from the same list, books every op once under its name.
#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "backend/profiling_ops.h"

using namespace mousse;
using Catch::Contains;

namespace {

#define OP_NAME(R, name, P, A) #name,
const std::vector<std::string> kAllOps = {MOUSSE_OPS(OP_NAME, OP_NAME)};
#undef OP_NAME

// One line per argument kind, so a test can see what reached the backend.
std::string show(const Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream os;
  os << dtype_name(t.dtype) << t.shape.str() << "@" << t.data;
  return os.str();
}
std::string show(const AdamWArgs& a) {
  std::ostringstream os;
  os << "adamw(" << a.lr << "," << a.bias_correction1 << "," << a.bias_correction2 << ")";
  return os.str();
}
std::string show(const LionArgs& a) {
  std::ostringstream os;
  os << "lion(" << a.lr << "," << a.beta1 << ")";
  return os.str();
}
std::string show(const ComputeCopy& c) {
  return "copy(" + show(c.dst) + "," + std::to_string(c.seed) + "," + std::to_string(c.index) + ")";
}
template <class T>
std::string show(const T& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
template <class... T>
std::string show_all(const T&... v) {
  std::string s;
  ((s += show(v) + " "), ...);
  return s;
}

class FakeOps final : public Ops {
 public:
  std::map<std::string, int> calls;                // op -> how many times its _impl ran
  std::map<std::string, std::string> last_args;  // op -> the arguments of its last call
  int total() const {
    int n = 0;
    for (const auto& [op, c] : calls) n += c;
    return n;
  }
  void reset() { calls.clear(), last_args.clear(); }

  Device device() const override { return Device::cpu; }
  std::string name() const override { return "fake"; }
  std::unique_ptr<Ops> make_worker() const override { return std::make_unique<FakeOps>(); }
  void* alloc(size_t) override { return nullptr; }
  void free(void*) override {}
  void to_host(void*, const Tensor&) override {}
  void from_host(const Tensor&, const void*) override {}
  void synchronize() override {}

 private:
#define FAKE_OP(R, name, P, A) \
  R name##_impl P override {   \
    calls[#name]++;            \
    last_args[#name] = show_all A; \
    return R();                \
  }
  MOUSSE_OPS(FAKE_OP, FAKE_OP)
#undef FAKE_OP
};

// Tensors whose memory is never touched (the fake computes nothing): each at an address of its
// own, so that aliasing is what a test makes it.
Tensor t(Shape s, DType dt = DType::f32) {
  static char pool[1 << 16];
  static size_t next = 0;
  Tensor x;
  x.data = pool + (next++ % sizeof pool);
  x.dtype = dt;
  x.shape = s;
  return x;
}

int64_t draw(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// Dimensions of one draw: a model (B, T, H heads of even width hd, vocabulary V <= Vp) and
// matrices (m >= n, a batch of bt, k gathered indices).
struct Dims {
  int64_t B, T, H, hd, C, N, V, Vp, m, n, k, bt;
  explicit Dims(std::mt19937_64& rng) {
    B = draw(rng, 1, 3), T = draw(rng, 1, 5), H = draw(rng, 1, 3), hd = 2 * draw(rng, 1, 4);
    C = H * hd, N = B * T;
    Vp = draw(rng, 2, 9), V = draw(rng, 1, Vp);
    n = draw(rng, 1, 6), m = n + draw(rng, 0, 4), k = draw(rng, 1, 5), bt = draw(rng, 1, 3);
  }
};

const AdamWArgs kAdamW{1e-3, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.0975, 0.5};
const LionArgs kLion{1e-4, 0.9, 0.99, 0.1, 1.0};

// Every op once, with arguments its contract accepts.
void call_every_op(Ops& o, const Dims& d) {
  const int H = int(d.H);
  const int64_t B = d.B, T = d.T, C = d.C, N = d.N, m = d.m, n = d.n, k = d.k, bt = d.bt;
  o.fill(t({m, n}), 1.5);
  o.copy(t({m, n}, DType::bf16), t({n, m}));
  o.copy_stochastic(t({m * n}, DType::bf16), t({m, n}), 7);
  o.scale(t({m, n}), 2.0);
  o.axpby(t({m, n}), 1.0, t({m * n}), 0.5);
  o.sum(t({m}));
  o.sum_squares(t({n}));
  o.matmul(t({m, k}), t({n, m}), true, t({k, n}), true);
  o.matmul_batched(t({bt, m, k}), t({bt, m, n}), false, t({bt, n, k}), false, 2.0, 1.0);
  o.matmul_tf32(t({m, k}), t({m, n}), false, t({n, k}), false);
  o.embedding_forward(t({B, T, C}), t({d.Vp, C}), t({B, T}, DType::i32));
  o.rmsnorm_forward(t({B, T, C}), t({N}), t({B, T, C}));
  o.add_rmsnorm_forward(t({N, C}), t({N, C}), t({N}), t({N, C}), t({N, C}));
  o.qknorm_rope_forward(t({B, T, 3 * C}), t({N, 2 * H}), t({B, T, 3 * C}), H, 10000.f);
  o.attention_forward(t({B, T, C}), t({B, H, T}), t({B, T, 3 * C}), H);
  o.relu2_forward(t({N, 4 * C}), t({N, 4 * C}));
  o.classifier(t({N}), t({N, d.Vp}), t({N}, DType::i32), d.V, 1.0 / double(N), true);
  o.embedding_backward(t({d.Vp, C}), t({N, C}), t({N}, DType::i32));
  o.rmsnorm_backward(t({N, C}), t({N, C}), t({N, C}), t({N}));
  o.qknorm_rope_backward(t({B, T, 3 * C}), t({B, T, 3 * C}), t({B, T, 3 * C}), t({N * 2 * H}), H,
                         500.f);
  o.attention_backward(t({B, T, 3 * C}), t({B, T, C}), t({B, T, 3 * C}), t({B, T, C}),
                       t({B * H * T}), H);
  o.relu2_backward(t({N, 4 * C}), t({N, 4 * C}), t({N, 4 * C}));
  o.adamw_update(t({m, n}), t({m * n}), t({m, n}), t({m, n}), kAdamW,
                 ComputeCopy{t({m, n}, DType::bf16), 3, 5});
  o.lion_update(t({m, n}), t({m, n}), t({m, n}), kLion);
  o.eigh(t({n, n}), t({n}), t({n, n}));
  o.qr_orthonormal(t({m, n}), t({m, n}));
  o.scale_rows_cols(t({bt, m, n}), t({bt, m, n}), t({bt * m}), t({bt * n}));
  o.pow_clamped(t({m, n}), t({m * n}), 0.5, 1e-6);
  o.add_to_diagonal(t({n, n}), 1e-3);
  o.trace(t({n, n}));
  o.transpose(t({n, m}), t({m, n}));
  o.gather_columns(t({m, k}), t({m, n}), t({k}, DType::i32));
  o.gather_rows(t({k, n}), t({m, n}), t({k}, DType::i32));
  o.column_dots(t({n}), t({m, n}), t({m, n}));
  o.ema_square(t({m, n}), t({m * n}), 0.9);
  o.adam_direction(t({m, n}), t({m, n}), t({m, n}), 1e-8, 0.1, 0.01);
  o.sum_squares_batched(t({bt}), t({bt, m, n}));
  o.trace_to(t({1}), t({n, n}));
  o.scale_by_ratio(t({bt, m, n}), t({bt}), t({bt}), 0.5, 1.0, 1.0, 1e-8);
  o.eigh_batched(t({bt, n, n}), t({bt, n}), t({bt, n, n}));
  o.cholesky_batched(t({bt, n, n}));
  o.solve_upper_right_batched(t({bt, m, n}), t({bt, n, n}));
}

struct BadCall {
  const char* op;    // the op's name, which the error must carry
  const char* word;  // and a word saying what is wrong
  std::function<void(Ops&)> call;
};

// One contract violation per entry, on fresh dimensions.
std::vector<BadCall> bad_calls(const Dims& d) {
  const int H = int(d.H);
  const int64_t B = d.B, T = d.T, C = d.C, N = d.N, m = d.m, n = d.n, k = d.k, bt = d.bt;
  const Tensor shared = t({m, n});
  AdamWArgs no_bias = kAdamW;
  no_bias.bias_correction2 = 0.0;
  return {
      {"copy", "differ in size", [=](Ops& o) { o.copy(t({m, n + 1}), t({m, n})); }},
      {"copy_stochastic", "differ in size",
       [=](Ops& o) { o.copy_stochastic(t({m + 1, n}, DType::bf16), t({m, n}), 1); }},
      {"axpby", "differ in size", [=](Ops& o) { o.axpby(t({m, n}), 1.0, t({m * n + 1}), 0.0); }},
      {"matmul", "do not multiply",
       [=](Ops& o) { o.matmul(t({m, k}), t({m, n}), false, t({n + 1, k}), false); }},
      {"matmul_tf32", "do not multiply",
       [=](Ops& o) { o.matmul_tf32(t({m + 1, k}), t({m, n}), false, t({n, k}), false); }},
      {"matmul_batched", "3-D",
       [=](Ops& o) { o.matmul_batched(t({m, k}), t({m, n}), false, t({n, k}), false); }},
      {"matmul_batched", "batch sizes differ",
       [=](Ops& o) {
         o.matmul_batched(t({bt, m, k}), t({bt + 1, m, n}), false, t({bt, n, k}), false);
       }},
      {"embedding_forward", "width",
       [=](Ops& o) { o.embedding_forward(t({N, C + 1}), t({d.Vp, C}), t({N}, DType::i32)); }},
      {"embedding_backward", "tokens",
       [=](Ops& o) { o.embedding_backward(t({d.Vp, C}), t({N, C}), t({N + 1}, DType::i32)); }},
      {"rmsnorm_forward", "rstd",
       [=](Ops& o) { o.rmsnorm_forward(t({N, C}), t({N + 1}), t({N, C})); }},
      {"rmsnorm_backward", "differ in shape",
       [=](Ops& o) { o.rmsnorm_backward(t({N, C + 1}), t({N, C}), t({N, C}), t({N})); }},
      {"add_rmsnorm_forward", "empty",
       [=](Ops& o) {
         o.add_rmsnorm_forward(t({N, 0}), t({N, 0}), t({N}), t({N, 0}), t({N, 0}));
       }},
      {"qknorm_rope_forward", "even",
       [=](Ops& o) {
         const Tensor odd = t({B, T, 3 * 3 * H});  // hd 3
         o.qknorm_rope_forward(t(odd.shape), t({N * 2 * H}), odd, H, 1e4f);
       }},
      {"qknorm_rope_backward", "rope_base",
       [=](Ops& o) {
         o.qknorm_rope_backward(t({B, T, 3 * C}), t({B, T, 3 * C}), t({B, T, 3 * C}),
                                t({N * 2 * H}), H, -1.f);
       }},
      {"attention_forward", "n_head",
       [=](Ops& o) {
         o.attention_forward(t({B, T, C}), t({B, H, T}), t({B, T, 3 * C}), int(C) + 1);
       }},
      {"attention_forward", "lse",
       [=](Ops& o) { o.attention_forward(t({B, T, C}), t({B, H, T + 1}), t({B, T, 3 * C}), H); }},
      {"attention_backward", "different memory",
       [=](Ops& o) {
         const Tensor qkv = t({B, T, 3 * C});
         o.attention_backward(qkv, t({B, T, C}), qkv, t({B, T, C}), t({B * H * T}), H);
       }},
      {"relu2_backward", "differ in size",
       [=](Ops& o) { o.relu2_backward(t({N, C}), t({N, C + 1}), t({N, C})); }},
      {"classifier", "vocab_size",
       [=](Ops& o) {
         o.classifier(t({N}), t({N, d.Vp}), t({N}, DType::i32), d.Vp + 1, 1.0, false);
       }},
      {"classifier", "targets",
       [=](Ops& o) {
         o.classifier(t({N}), t({N, d.Vp}), t({N + 1}, DType::i32), d.V, 1.0, false);
       }},
      {"adamw_update", "bias correction",
       [=](Ops& o) { o.adamw_update(t({m, n}), t({m, n}), t({m, n}), t({m, n}), no_bias); }},
      {"adamw_update", "copy.dst",
       [=](Ops& o) {
         o.adamw_update(t({m, n}), t({m, n}), t({m, n}), t({m, n}), kAdamW,
                        ComputeCopy{t({m, n + 1}, DType::bf16), 1, 0});
       }},
      {"lion_update", "differ in size",
       [=](Ops& o) { o.lion_update(t({m, n}), t({m, n}), t({m * n + 1}), kLion); }},
      {"eigh", "square", [=](Ops& o) { o.eigh(t({n, n}), t({n}), t({n, n + 1})); }},
      {"qr_orthonormal", "m >= n", [=](Ops& o) { o.qr_orthonormal(t({n, n + 1}), t({n, n + 1})); }},
      {"scale_rows_cols", "col_scale",
       [=](Ops& o) {
         o.scale_rows_cols(t({bt, m, n}), t({bt, m, n}), Tensor{}, t({bt * n + 1}));
       }},
      {"pow_clamped", "differ in size",
       [=](Ops& o) { o.pow_clamped(t({m, n}), t({m + 1, n}), 2.0, 0.0); }},
      {"add_to_diagonal", "square", [=](Ops& o) { o.add_to_diagonal(t({n, n + 1}), 1.0); }},
      {"trace", "square", [=](Ops& o) { o.trace(t({bt, n, n})); }},
      {"transpose", "transpose", [=](Ops& o) { o.transpose(t({m, n + 1}), t({m, n})); }},
      {"gather_columns", "different memory",
       [=](Ops& o) { o.gather_columns(shared, shared, t({n}, DType::i32)); }},
      {"gather_rows", "one row per index",
       [=](Ops& o) { o.gather_rows(t({k + 1, n}), t({m, n}), t({k}, DType::i32)); }},
      {"column_dots", "values", [=](Ops& o) { o.column_dots(t({n + 1}), t({m, n}), t({m, n})); }},
      {"ema_square", "differ in size",
       [=](Ops& o) { o.ema_square(t({m, n}), t({m * n + 1}), 0.5); }},
      {"adam_direction", "bias correction",
       [=](Ops& o) { o.adam_direction(t({m, n}), t({m, n}), t({m, n}), 1e-8, -1.0, 0.5); }},
      {"sum_squares_batched", "slices",
       [=](Ops& o) { o.sum_squares_batched(t({m * n + 1}), t({m, n})); }},
      {"trace_to", "one scalar", [=](Ops& o) { o.trace_to(t({2}), t({n, n})); }},
      {"scale_by_ratio", "differ in size",
       [=](Ops& o) { o.scale_by_ratio(t({bt, m, n}), t({bt + 1}), t({bt}), 1, 1, 1, 0); }},
      {"eigh_batched", "different memory",
       [=](Ops& o) {
         const Tensor a = t({bt, n, n});
         o.eigh_batched(a, t({bt, n}), a);
       }},
      {"cholesky_batched", "[batch, n, n]", [=](Ops& o) { o.cholesky_batched(t({bt, n, n + 1})); }},
      {"solve_upper_right_batched", "[batch, m, n]",
       [=](Ops& o) { o.solve_upper_right_batched(t({bt, m, n + 1}), t({bt, n, n})); }},
  };
}

// The report's rows of phase "other": label -> calls per step.
std::map<std::string, double> report_rows(const std::string& report) {
  std::map<std::string, double> rows;
  std::istringstream in(report);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("other ", 0) != 0 || line.find("(all ops)") != std::string::npos) continue;
    std::string label = line.substr(11, 44);
    label.erase(label.find_last_not_of(' ') + 1);
    rows[label] = std::stod(line.substr(56, 8));
  }
  return rows;
}

}  // namespace

TEST_CASE("backend ops fronts: every op reaches its backend once, with its arguments unchanged",
          "[backend]") {
  for (uint64_t seed = 1; seed <= 8; seed++) {
    std::mt19937_64 rng(seed);
    const Dims d(rng);
    FakeOps fake;
    call_every_op(fake, d);
    for (const std::string& op : kAllOps) {
      INFO(op);
      CHECK(fake.calls[op] == 1);
    }
    CHECK(fake.total() == int(kAllOps.size()));
  }
  // the arguments, default ones included, as the caller gave them
  FakeOps fake;
  const Tensor out = t({4, 3}), a = t({4, 5}), b = t({5, 3});
  fake.matmul(out, a, false, b, false);
  CHECK(fake.last_args["matmul"] == show_all(out, a, false, b, false, 1.0, 0.0));
  const Tensor p = t({7}), g = t({7}, DType::bf16), m = t({7});
  fake.lion_update(p, g, m, kLion);
  CHECK(fake.last_args["lion_update"] == show_all(p, g, m, kLion, ComputeCopy{}));
  const Tensor logits = t({6, 8}), losses = t({6}), targets = t({6}, DType::i32);
  fake.classifier(losses, logits, targets, 5, 0.25, false);
  CHECK(fake.last_args["classifier"] == show_all(losses, logits, targets, 5, 0.25, false));
}

TEST_CASE("backend ops fronts: a contract violation names the op before the backend runs",
          "[backend]") {
  for (uint64_t seed = 11; seed <= 18; seed++) {
    std::mt19937_64 rng(seed);
    const Dims d(rng);
    FakeOps fake;
    ProfilingOps prof(fake);
    for (const BadCall& bad : bad_calls(d)) {
      INFO(bad.op << ": " << bad.word << " (seed " << seed << ")");
      CHECK_THROWS_WITH(bad.call(fake), Contains(bad.op) && Contains(bad.word));
      CHECK(fake.total() == 0);
      // through the profiler: the same error, nothing booked
      CHECK_THROWS_WITH(bad.call(prof), Contains(bad.op) && Contains(bad.word));
      CHECK(fake.total() == 0);
    }
    CHECK(report_rows(prof.report(1, 0.0)).empty());
  }
}

TEST_CASE("backend ops fronts: ProfilingOps books every op once, under its name or its key",
          "[backend]") {
  for (uint64_t seed = 21; seed <= 24; seed++) {
    std::mt19937_64 rng(seed);
    const Dims d(rng);
    FakeOps fake;
    ProfilingOps prof(fake);
    call_every_op(prof, d);
    for (const std::string& op : kAllOps) CHECK(fake.calls[op] == 1);  // forwarded once
    const std::map<std::string, double> rows = report_rows(prof.report(1, 0.0));
    INFO(prof.report(1, 0.0));
    CHECK(rows.size() == kAllOps.size());
    for (const std::string& op : kAllOps) {
      INFO(op);
      int matched = 0;
      for (const auto& [label, calls] : rows)
        if (label == op || label.rfind(op + " ", 0) == 0) {
          matched++;
          CHECK(calls == 1.0);
        }
      CHECK(matched == 1);
    }
    // the keyed rows, with the labels bench --profile has always printed
    const std::string mnk =
        std::to_string(d.m) + "x" + std::to_string(d.k) + "x" + std::to_string(d.n);
    CHECK(rows.count("matmul " + mnk + " f32") == 1);
    CHECK(rows.count("matmul_tf32 " + mnk + " f32") == 1);
    CHECK(rows.count("matmul_batched " + std::to_string(d.bt) + "x" + mnk + " f32") == 1);
    CHECK(rows.count("copy f32->bf16") == 1);
    CHECK(rows.count("adamw_update + compute copy") == 1);
    CHECK(rows.count("lion_update") == 1);
    CHECK(rows.count("eigh " + Shape{d.n, d.n}.str()) == 1);
    CHECK(rows.count("cholesky_batched " + Shape{d.bt, d.n, d.n}.str()) == 1);
    CHECK(rows.count("solve_upper_right_batched " + Shape{d.bt, d.m, d.n}.str()) == 1);
  }
}
