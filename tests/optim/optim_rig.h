#pragma once
// An optimizer over a set of (out × in) matrices with gradients, on any backend: the harness of
// the CPU optimizer tests (otest::Rig, which owns a CPU backend), test_cuda_optim (CUDA vs CPU)
// and bench-optim-cuda. Weights and gradients go in and out as host doubles.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/ops.h"
#include "core/arena.h"
#include "core/json_config.h"
#include "model/params.h"
#include "optim/matrix_common.h"
#include "optim/optimizer.h"

namespace mousse {
namespace otest {

using Shapes = std::vector<std::pair<int64_t, int64_t>>;

struct OptimRig {
  Ops& ops;
  std::unique_ptr<Arena> arena;
  std::vector<Param> params;
  std::vector<Param*> ptrs;
  std::unique_ptr<Optimizer> opt;
  int64_t steps = 0;
  // Scratch is a temporary of one step(): the contract is to write it before reading it and to
  // keep nothing in it for the next step. So every step starts with the scratch filled with NaN
  // (i32 buffers with 0): a read before a write shows as a non-finite update. Benchmarks turn
  // it off (it is a pass over the scratch).
  bool poison_scratch = true;

  // The parameters are named "blocks.<i>.w", or `names` when given (one per shape).
  OptimRig(Ops& o, const json& cfg, const Shapes& shapes, DType dt = DType::f32,
           const std::string& group = "matrix", const std::vector<std::string>& names = {})
      : ops(o) {
    arena = std::make_unique<Arena>(ops);
    params.resize(shapes.size());
    for (size_t i = 0; i < shapes.size(); i++) {
      Param& p = params[i];
      p.name = names.empty() ? "blocks." + std::to_string(i) + ".w" : names[i];
      p.role = ParamRole::matrix;
      p.rows = shapes[i].first;
      p.cols = shapes[i].second;
      p.offset = 0;
      arena->reserve(p.weight, "parameters", p.name, dt, Shape{p.rows, p.cols});
      arena->reserve(p.grad, "gradients", p.name, dt, Shape{p.rows, p.cols});
      ptrs.push_back(&p);
    }
    ConfigNode node(cfg, "optimizer", "test");
    opt = make_optimizer(node, group);
    node.finish();
    opt->reserve_state(*arena, ptrs);
    arena->allocate();
    for (auto& p : params) p.compute = p.weight;
  }

  // Bytes of the optimizer's state (category "optimizer") and scratch ("optimizer_scratch").
  size_t bytes(const std::string& category) const {
    size_t b = 0;
    for (auto& e : arena->entries())
      if (e.category == category) b += e.target->bytes();
    return b;
  }

  void set(const Tensor& t, const std::vector<double>& v) { write_vector(ops, t, v); }
  std::vector<double> get(const Tensor& t) { return read_vector(ops, t); }

  void set_grads(const std::vector<std::vector<double>>& grads) {
    for (size_t i = 0; i < params.size(); i++) set(params[i].grad, grads[i]);
  }
  void step(double lr, bool diagnostics = false, double grad_scale = 1.0) {
    OptimStep s;
    s.step = ++steps;
    s.lr = lr;
    s.grad_scale = grad_scale;
    s.diagnostics = diagnostics;
    if (poison_scratch)
      for (auto& e : arena->entries())
        if (e.category == "optimizer_scratch")
          ops.fill(*e.target, e.target->dtype == DType::i32 ? 0.0 : std::nan(""));
    opt->step(ops, ptrs, s);
  }
};

// Cholesky QR's per-slice fallback as the GPU runs it (test_power_refresh on the CPU,
// test_cuda_optim CUDA vs CPU): a [3, d, d] f32 stack, slice 0 Gaussian + 2·sqrt(d)·I (well
// conditioned), slice 1 the same with a zero column (rank deficient), slice 2 with an inf,
// orthonormalised with its scratch planned through an arena on `ops`. Returns Q (host doubles)
// and, in `fallbacks`, how many slices were redone with Householder QR.
inline std::vector<double> orthonormalize_fallback_case(Ops& ops, int64_t d, uint64_t seed,
                                                        int& fallbacks) {
  const int64_t b = 3;
  std::vector<double> e(size_t(b * d * d));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (auto& x : e) x = double(float(nd(rng)));
  for (int64_t k = 0; k < b; k++)
    for (int64_t i = 0; i < d; i++) e[size_t(k * d * d + i * d + i)] += 2.0 * std::sqrt(double(d));
  for (int64_t i = 0; i < d; i++) e[size_t(d * d + i * d + 5)] = 0.0;
  e[size_t(2 * d * d + 7)] = std::numeric_limits<double>::infinity();
  Arena arena(ops);
  PowerQrScratch s;
  s.reserve(arena, "optimizer_scratch", "test", DType::f32, b * d * d, b * d, QrMethod::cholesky);
  Tensor E, Q;
  arena.reserve(E, "test", "e", DType::f32, Shape{b, d, d});
  arena.reserve(Q, "test", "q", DType::f32, Shape{b, d, d});
  arena.allocate();
  write_vector(ops, E, e);
  ops.fill(Q, std::nan(""));
  fallbacks = orthonormalize(ops, Q, E, s);
  return read_vector(ops, Q);
}

// max |QᵀQ − I| of slice k of a stack of [d, d] matrices (row-major, host doubles): how far
// that slice's columns are from orthonormal.
inline double orthogonality_error(const std::vector<double>& q, int64_t k, int64_t d) {
  double worst = 0;
  const double* s = q.data() + k * d * d;
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) {
      double dot = 0;
      for (int64_t r = 0; r < d; r++) dot += s[r * d + i] * s[r * d + j];
      worst = std::max(worst, std::fabs(dot - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

}  // namespace otest
}  // namespace mousse
