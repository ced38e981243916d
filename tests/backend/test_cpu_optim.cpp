// CPU backend: AdamW and Lion against a PyTorch / paper reference (optim_reference.py, run
// with MOUSSE_PYTHON), f32 vs f64, and the elementwise pieces (ema_square, adam_direction).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"

using namespace mousse;
using namespace mousse::test;
using Catch::Matchers::Contains;

namespace {

struct Hyper {
  double lr, beta1, beta2, eps, weight_decay, grad_scale;
};

struct State {
  std::vector<double> p, m, v;
};

// One optimizer run for the Python reference: algorithm, hyper-parameters, start, gradients.
struct Job {
  std::string algo;
  Hyper h;
  State s0;
  std::vector<std::vector<double>> grads;
};

// Runs optim_reference.py once on all jobs (importing torch dominates the cost); returns the
// final state of each.
std::vector<State> python_reference(const std::vector<Job>& jobs) {
  namespace fs = std::filesystem;
  const std::string tag = "mousse_optim_" + std::to_string(::getpid()) + "_";
  const fs::path err = fs::temp_directory_path() / (tag + "stderr");
  std::string cmd = std::string("'") + MOUSSE_PYTHON + "' '" + MOUSSE_OPTIM_REFERENCE + "'";
  std::vector<fs::path> ins, outs;
  for (size_t k = 0; k < jobs.size(); k++) {
    const Job& j = jobs[k];
    ins.push_back(fs::temp_directory_path() / (tag + std::to_string(k) + ".in"));
    outs.push_back(fs::temp_directory_path() / (tag + std::to_string(k) + ".out"));
    std::vector<double> data = {double(j.s0.p.size()), double(j.grads.size()), j.h.lr,
                                j.h.beta1, j.h.beta2, j.h.eps, j.h.weight_decay, j.h.grad_scale};
    for (auto* part : {&j.s0.p, &j.s0.m, &j.s0.v}) data.insert(data.end(), part->begin(), part->end());
    for (auto& g : j.grads) data.insert(data.end(), g.begin(), g.end());
    std::ofstream f(ins.back(), std::ios::binary);
    f.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size() * 8));
    cmd += " " + j.algo + " '" + ins.back().string() + "' '" + outs.back().string() + "'";
  }
  cmd += " 2> '" + err.string() + "'";
  const int rc = std::system(cmd.c_str());
  std::stringstream msg;
  msg << std::ifstream(err).rdbuf();
  INFO("command: " << cmd << "\nstderr: " << msg.str());
  REQUIRE(rc == 0);
  std::vector<State> results;
  for (size_t k = 0; k < jobs.size(); k++) {
    const size_t n = jobs[k].s0.p.size();
    std::vector<double> res(3 * n);
    std::ifstream f(outs[k], std::ios::binary);
    f.read(reinterpret_cast<char*>(res.data()), std::streamsize(res.size() * 8));
    REQUIRE(f.gcount() == std::streamsize(res.size() * 8));
    results.push_back({std::vector<double>(res.begin(), res.begin() + n),
                       std::vector<double>(res.begin() + n, res.begin() + 2 * n),
                       std::vector<double>(res.begin() + 2 * n, res.end())});
    fs::remove(ins[k]), fs::remove(outs[k]);
  }
  fs::remove(err);
  return results;
}

template <class T>
State run_adamw(Ops& ops, const Hyper& h, const State& s0,
                const std::vector<std::vector<double>>& grads) {
  const int64_t n = int64_t(s0.p.size());
  Buf<T> p(Shape{n}), m(Shape{n}), v(Shape{n}), g(Shape{n});
  for (int64_t i = 0; i < n; i++) p[i] = T(s0.p[i]), m[i] = T(s0.m[i]), v[i] = T(s0.v[i]);
  for (size_t t = 0; t < grads.size(); t++) {
    for (int64_t i = 0; i < n; i++) g[i] = T(grads[t][i]);
    const int step = int(t) + 1;
    const AdamWArgs a{h.lr, h.beta1, h.beta2, h.eps, h.weight_decay,
                      1.0 - std::pow(h.beta1, step), 1.0 - std::pow(h.beta2, step), h.grad_scale};
    ops.adamw_update(p, g, m, v, a);
  }
  return {std::vector<double>(p.v.begin(), p.v.end()), std::vector<double>(m.v.begin(), m.v.end()),
          std::vector<double>(v.v.begin(), v.v.end())};
}

template <class T>
State run_lion(Ops& ops, const Hyper& h, const State& s0,
               const std::vector<std::vector<double>>& grads) {
  const int64_t n = int64_t(s0.p.size());
  Buf<T> p(Shape{n}), m(Shape{n}), g(Shape{n});
  for (int64_t i = 0; i < n; i++) p[i] = T(s0.p[i]), m[i] = T(s0.m[i]);
  for (auto& gt : grads) {
    for (int64_t i = 0; i < n; i++) g[i] = T(gt[i]);
    ops.lion_update(p, g, m, LionArgs{h.lr, h.beta1, h.beta2, h.weight_decay, h.grad_scale});
  }
  return {std::vector<double>(p.v.begin(), p.v.end()), std::vector<double>(m.v.begin(), m.v.end()),
          s0.v};
}

State random_state(int64_t n, std::mt19937_64& rng, bool zero_moments) {
  State s{randn(Shape{n}, rng).v, randn(Shape{n}, rng, 0.1).v, randn(Shape{n}, rng, 0.1).v};
  for (auto& x : s.v) x = x * x;  // second moments are non-negative
  if (zero_moments) std::fill(s.m.begin(), s.m.end(), 0.0), std::fill(s.v.begin(), s.v.end(), 0.0);
  return s;
}

std::vector<std::vector<double>> random_grads(int steps, int64_t n, std::mt19937_64& rng) {
  std::vector<std::vector<double>> g;
  for (int t = 0; t < steps; t++) g.push_back(randn(Shape{n}, rng).v);
  return g;
}

}  // namespace

TEST_CASE("cpu adamw_update and lion_update match the PyTorch / paper reference",
          "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(61);
  const int64_t n = 257;
  // AdamW with betas whose powers are exact in f32, and with the paper's defaults (f32 values
  // here; the f64 test below uses hyper-parameters that f32 cannot represent)
  const Hyper exact{1e-2f, 0.875f, 0.96875f, 1e-8f, 0.1f, 0.5f};
  const Hyper paper{3e-3f, 0.9f, 0.95f, 1e-8f, 0.01f, 1.0f};
  const Hyper lion{1e-3f, 0.95f, 0.98f, 0.f, 0.1f, 0.75f};  // eps unused
  std::vector<Job> jobs;
  for (bool zero : {true, false}) {  // from zero moments (step 1 of a run), from random ones
    const State s0 = random_state(n, rng, zero);
    jobs.push_back({"adamw", exact, s0, random_grads(4, n, rng)});
    jobs.push_back({"adamw", paper, s0, random_grads(4, n, rng)});
    jobs.push_back({"lion", lion, s0, random_grads(4, n, rng)});
  }
  const std::vector<State> want = python_reference(jobs);
  for (size_t k = 0; k < jobs.size(); k++) {
    const Job& j = jobs[k];
    const bool tight = j.h.beta1 != paper.beta1;  // only the paper betas round bc1, bc2
    INFO("job " << k << ": " << j.algo << (tight ? "" : " (paper betas)"));
    const bool adamw = j.algo == "adamw";
    const State got = adamw ? run_adamw<double>(*ops, j.h, j.s0, j.grads)
                            : run_lion<double>(*ops, j.h, j.s0, j.grads);
    CHECK(rel_err(got.p, want[k].p) < (tight ? 1e-13 : 1e-9));
    CHECK(rel_err(got.m, want[k].m) < 1e-13);
    if (adamw) CHECK(rel_err(got.v, want[k].v) < 1e-13);
    const State gotf = adamw ? run_adamw<float>(*ops, j.h, j.s0, j.grads)
                             : run_lion<float>(*ops, j.h, j.s0, j.grads);
    CHECK(rel_err(gotf.p, want[k].p) < kF32Tol);
    CHECK(rel_err(gotf.m, want[k].m) < kF32Tol);
  }
}

TEST_CASE("cpu adamw_update and lion_update in f64 match an f64 reference to round-off",
          "[backend][cpu]") {
  // `precision: f64` updates f64 state in f64 throughout: hyper-parameters that no f32 value
  // equals (rounding any of them to f32 moves the weights by ~1e-11 relative, the update itself
  // by ~1e-8) and many steps, so that a single f32 rounding anywhere shows.
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(65);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int64_t n = 1031;
  std::vector<Job> jobs;
  for (int k = 0; k < 4; k++) {
    const Hyper h{3e-3 * (1 + u(rng)), 0.9 + 0.05 * u(rng), 0.95 + 0.04 * u(rng),
                  1e-8 * (1 + u(rng)), 0.1 * u(rng), 0.3 + u(rng)};
    const State s0 = random_state(n, rng, k % 2 == 0);
    jobs.push_back({k < 2 ? "adamw" : "lion", h, s0, random_grads(12, n, rng)});
  }
  const std::vector<State> want = python_reference(jobs);
  for (size_t k = 0; k < jobs.size(); k++) {
    const Job& j = jobs[k];
    INFO("job " << k << ": " << j.algo << " lr " << j.h.lr << " betas " << j.h.beta1 << ", "
                << j.h.beta2 << " wd " << j.h.weight_decay << " grad_scale " << j.h.grad_scale);
    const bool adamw = j.algo == "adamw";
    const State got = adamw ? run_adamw<double>(*ops, j.h, j.s0, j.grads)
                            : run_lion<double>(*ops, j.h, j.s0, j.grads);
    CHECK(rel_err(got.p, want[k].p) < 1e-15);
    CHECK(rel_err(got.m, want[k].m) < 1e-15);
    if (adamw) CHECK(rel_err(got.v, want[k].v) < 1e-15);
    // The weights' change over the run, which f32 hyper-parameters would get wrong by ~1e-8.
    std::vector<double> d_got(static_cast<size_t>(n)), d_want(static_cast<size_t>(n));
    for (size_t i = 0; i < size_t(n); i++)
      d_got[i] = got.p[i] - j.s0.p[i], d_want[i] = want[k].p[i] - j.s0.p[i];
    CHECK(rel_err(d_got, d_want) < 1e-12);
  }
}

TEST_CASE("cpu adamw/lion: f32 gradient into f64 state, errors", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(63);
  auto p = randn(Shape{10}, rng), m = randn(Shape{10}, rng), v = uniform(Shape{10}, rng, 0, 1);
  auto g = randn(Shape{10}, rng);
  auto gf = cast<float>(g);
  auto p2 = p, m2 = m, v2 = v;
  const AdamWArgs a{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.1f, 0.0975f, 1.f};
  ops->adamw_update(p, cast<double>(gf), m, v, a);
  ops->adamw_update(p2, gf, m2, v2, a);
  CHECK(p.v == p2.v);
  CHECK(v.v == v2.v);
  ops->lion_update(p2, gf, m2, LionArgs{1e-2f, 0.9f, 0.99f, 0.f, 1.f});

  Buf<float> pf(Shape{10});
  CHECK_THROWS_WITH(ops->adamw_update(pf, g, cast<float>(m), cast<float>(v), a),
                    Contains("adamw_update") && Contains("g is f64"));
  Buf<double> short_m(Shape{9});
  CHECK_THROWS_WITH(ops->lion_update(p, g, short_m, LionArgs{1e-2f, 0.9f, 0.99f, 0.f, 1.f}),
                    Contains("lion_update") && Contains("[9]") && Contains("[10]"));
  AdamWArgs bad = a;
  bad.bias_correction1 = 0.f;
  CHECK_THROWS_WITH(ops->adamw_update(p, g, m, v, bad), Contains("bias correction"));

  // A requested working copy is a plain copy of the updated weights on the CPU (one dtype).
  Buf<double> copy(Shape{10}), copy2(Shape{10});
  ops->adamw_update(p, g, m, v, a, ComputeCopy{copy, 7, 0});
  CHECK(copy.v == p.v);
  ops->lion_update(p2, gf, m2, LionArgs{1e-2f, 0.9f, 0.99f, 0.f, 1.f}, ComputeCopy{copy2, 7, 3});
  CHECK(copy2.v == p2.v);
  CHECK_THROWS_WITH(ops->lion_update(p2, gf, m2, LionArgs{1e-2f, 0.9f, 0.99f, 0.f, 1.f},
                                     ComputeCopy{pf, 7, 0}),
                    Contains("lion_update") && Contains("copy.dst"));
}

TEST_CASE("cpu ema_square and adam_direction: closed forms, f32 vs f64", "[backend][cpu]") {
  auto ops = make_cpu_ops();
  std::mt19937_64 rng(64);
  auto v = uniform(Shape{3, 7}, rng, 0.0, 2.0), x = randn(Shape{3, 7}, rng);
  auto v0 = v;
  ops->ema_square(v, x, 0.9);
  for (size_t i = 0; i < v.size(); i++)
    CHECK(v[i] == Approx(0.9 * v0[i] + 0.1 * x[i] * x[i]).epsilon(1e-15));
  auto vf = cast<float>(v0);
  ops->ema_square(vf, cast<float>(x), 0.9);
  CHECK(rel_err(vf.v, v.v) < kF32Tol);

  auto m = randn(Shape{3, 7}, rng);
  Buf<double> out(Shape{3, 7});
  ops->adam_direction(out, m, v, 1e-8, 0.19, 0.0975);
  for (size_t i = 0; i < out.size(); i++)
    CHECK(out[i] == Approx((m[i] / 0.19) / (std::sqrt(v[i] / 0.0975) + 1e-8)).epsilon(1e-14));
  Buf<float> outf(Shape{3, 7});
  ops->adam_direction(outf, cast<float>(m), cast<float>(v), 1e-8, 0.19, 0.0975);
  CHECK(rel_err(outf.v, out.v) < kF32Tol);
}
