#pragma once
// Helpers for the optimizer tests: a small arena of (out × in) matrices with gradients, an
// optimizer from a JSON config, seeded random inputs, and the Python reference bridge.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include "backend/ops.h"
#include "core/arena.h"
#include "core/json_config.h"
#include "model/params.h"
#include "optim/matrix_common.h"
#include "optim/optimizer.h"
#include "optim_rig.h"

namespace mousse {
namespace otest {

using Mat = std::vector<double>;  // row-major host matrix

inline Mat randn(int64_t n, std::mt19937_64& rng, double sd = 1.0) {
  std::normal_distribution<double> d(0.0, sd);
  Mat m(static_cast<size_t>(n));
  for (auto& x : m) x = d(rng);
  return m;
}

inline double rel_err(const Mat& a, const Mat& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

// The CPU backend a Rig owns: a base class, so that it exists before the OptimRig that uses it.
struct OwnedCpuOps {
  std::unique_ptr<Ops> owned_ops = make_cpu_ops();
};

// Parameters (matrices) + gradients in an arena and one optimizer over them, on the CPU.
struct Rig : OwnedCpuOps, OptimRig {
  Rig(const json& cfg, const Shapes& shapes, DType dt = DType::f64,
      const std::string& group = "matrix", const std::vector<std::string>& names = {})
      : OptimRig(*owned_ops, cfg, shapes, dt, group, names) {}

  Mat w(size_t i = 0) { return get(params[i].weight); }

  // One step with the given gradients (one per parameter).
  using OptimRig::step;
  void step(const std::vector<Mat>& grads, double lr, bool diagnostics = false,
            double grad_scale = 1.0) {
    set_grads(grads);
    step(lr, diagnostics, grad_scale);
  }

  // The optimizer's state tensors (category "optimizer"), by arena name; with a prefix, only
  // the names that start with it (only those are read: others may be a worker's to write).
  std::vector<std::pair<std::string, Mat>> state(const std::string& prefix = "") {
    std::vector<std::pair<std::string, Mat>> out;
    for (auto& e : arena->entries())
      if (e.category == "optimizer" && e.name.rfind(prefix, 0) == 0)
        out.push_back({e.name, get(*e.target)});
    return out;
  }
  void load_state(const std::vector<std::pair<std::string, Mat>>& st) {
    for (auto& kv : st) {
      bool found = false;
      for (auto& e : arena->entries())
        if (e.category == "optimizer" && e.name == kv.first) {
          set(*e.target, kv.second);
          found = true;
        }
      REQUIRE(found);
    }
  }
};

// Gives two rigs over the same shapes the same random weights.
inline void same_random_weights(Rig& a, Rig& b, std::mt19937_64& rng) {
  REQUIRE(a.params.size() == b.params.size());
  for (size_t i = 0; i < a.params.size(); i++) {
    const Mat w0 = randn(a.params[i].rows * a.params[i].cols, rng);
    a.set(a.params[i].weight, w0);
    b.set(b.params[i].weight, w0);
  }
}

#ifndef MOUSSE_PYTHON
#define MOUSSE_PYTHON "/usr/bin/python3"
#endif

// Runs tests/optim/optim_ref.py on `in` and returns its JSON output.
inline json python_ref(const json& in) {
  char in_path[] = "/tmp/mousse_optim_in_XXXXXX";
  char out_path[] = "/tmp/mousse_optim_out_XXXXXX";
  int fi = mkstemp(in_path), fo = mkstemp(out_path);
  REQUIRE(fi >= 0);
  REQUIRE(fo >= 0);
  close(fi);
  close(fo);
  {
    std::ofstream f(in_path);
    f << in.dump();
  }
  const std::string cmd = std::string(MOUSSE_PYTHON) + " " + MOUSSE_OPTIM_REF + " " + in_path +
                          " " + out_path;
  const int rc = std::system(cmd.c_str());
  json out;
  if (rc == 0) {
    std::ifstream f(out_path);
    f >> out;
  }
  std::remove(in_path);
  std::remove(out_path);
  INFO("command: " << cmd);
  REQUIRE(rc == 0);
  return out;
}

inline json to_json_matrix(const Mat& m, int64_t rows, int64_t cols) {
  json j = json::array();
  for (int64_t r = 0; r < rows; r++) {
    json row = json::array();
    for (int64_t c = 0; c < cols; c++) row.push_back(m[size_t(r * cols + c)]);
    j.push_back(row);
  }
  return j;
}

inline Mat from_json_matrix(const json& j) {
  Mat m;
  for (auto& row : j)
    for (auto& x : row) m.push_back(x.get<double>());
  return m;
}

// One optimizer run to compare with the Python reference: its input, and W after every step.
struct RefJob {
  json in;
  std::vector<Mat> got;
  std::string label;
  double tol;
};

// Runs every job's reference in ONE Python call (interpreter start-up dominates) and checks W
// after every step.
inline void check_jobs(const std::vector<RefJob>& jobs) {
  json in = {{"mode", "batch"}, {"jobs", json::array()}};
  for (auto& j : jobs) in["jobs"].push_back(j.in);
  json out = python_ref(in);
  REQUIRE(out["results"].size() == jobs.size());
  for (size_t k = 0; k < jobs.size(); k++) {
    const json& w = out["results"][k]["weights"];
    REQUIRE(w.size() == jobs[k].got.size());
    for (size_t t = 0; t < jobs[k].got.size(); t++) {
      INFO(jobs[k].label << " step " << t);
      CHECK(rel_err(jobs[k].got[t], from_json_matrix(w[t])) < jobs[k].tol);
    }
  }
}

}  // namespace otest
}  // namespace mousse
