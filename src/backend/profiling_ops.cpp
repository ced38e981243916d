#include "backend/profiling_ops.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

namespace mousse {

namespace {
// "matmul 16384x2304x768 bf16" (M x N x K of out[M, N] = op(a)[M, K] op(b)[K, N]), batched with
// the batch in front.
std::string gemm_key(const char* op, const Tensor& out, const Tensor& a, bool trans_a,
                     int64_t batch, double& flops) {
  const bool b3 = batch > 0;
  const int64_t ar = b3 ? a.shape[1] : a.rows(), ac = b3 ? a.shape[2] : a.cols();
  const int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
  const int64_t N = b3 ? out.shape[2] : out.cols();
  flops = 2.0 * double(std::max<int64_t>(batch, 1)) * double(M) * double(N) * double(K);
  char buf[128];
  if (b3)
    std::snprintf(buf, sizeof buf, "%s %lldx%lldx%lldx%lld %s", op, (long long)batch, (long long)M,
                  (long long)N, (long long)K, dtype_name(a.dtype));
  else
    std::snprintf(buf, sizeof buf, "%s %lldx%lldx%lld %s", op, (long long)M, (long long)N,
                  (long long)K, dtype_name(a.dtype));
  return buf;
}
}  // namespace

// The labels of the ops whose rows say more than the op's name (XK in MOUSSE_OPS).
ProfilingOps::Key ProfilingOps::key_copy(const Tensor& dst, const Tensor& src) {
  return {std::string("copy ") + dtype_name(src.dtype) + "->" + dtype_name(dst.dtype)};
}
ProfilingOps::Key ProfilingOps::key_matmul(const Tensor& out, const Tensor& a, bool trans_a,
                                           const Tensor&, bool, double, double) {
  Key k;
  k.label = gemm_key("matmul", out, a, trans_a, 0, k.flops);
  return k;
}
ProfilingOps::Key ProfilingOps::key_matmul_batched(const Tensor& out, const Tensor& a,
                                                   bool trans_a, const Tensor&, bool, double,
                                                   double) {
  Key k;
  k.label =
      gemm_key("matmul_batched", out, a, trans_a, a.shape.ndim == 3 ? a.shape[0] : 1, k.flops);
  return k;
}
ProfilingOps::Key ProfilingOps::key_matmul_tf32(const Tensor& out, const Tensor& a, bool trans_a,
                                                const Tensor&, bool, double, double) {
  Key k;
  k.label = gemm_key("matmul_tf32", out, a, trans_a, 0, k.flops);
  return k;
}
ProfilingOps::Key ProfilingOps::key_adamw_update(const Tensor&, const Tensor&, const Tensor&,
                                                 const Tensor&, const AdamWArgs&,
                                                 const ComputeCopy& copy) {
  return {copy.dst.defined() ? "adamw_update + compute copy" : "adamw_update"};
}
ProfilingOps::Key ProfilingOps::key_lion_update(const Tensor&, const Tensor&, const Tensor&,
                                                const LionArgs&, const ComputeCopy& copy) {
  return {copy.dst.defined() ? "lion_update + compute copy" : "lion_update"};
}
ProfilingOps::Key ProfilingOps::key_eigh(const Tensor&, const Tensor&, const Tensor& a) {
  return {"eigh " + a.shape.str()};
}
ProfilingOps::Key ProfilingOps::key_qr_orthonormal(const Tensor&, const Tensor& a) {
  return {"qr_orthonormal " + a.shape.str()};
}
ProfilingOps::Key ProfilingOps::key_eigh_batched(const Tensor&, const Tensor&, const Tensor& a) {
  return {"eigh_batched " + a.shape.str()};
}
ProfilingOps::Key ProfilingOps::key_cholesky_batched(const Tensor& a) {
  return {"cholesky_batched " + a.shape.str()};
}
ProfilingOps::Key ProfilingOps::key_solve_upper_right_batched(const Tensor& x, const Tensor&) {
  return {"solve_upper_right_batched " + x.shape.str()};
}

void ProfilingOps::book(const std::string& what, std::chrono::steady_clock::time_point t0,
                        double flops) {
  inner_.synchronize();
  Row& r = rows_[{phase_, what}];
  r.calls++;
  r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.flops += flops;
}

std::string ProfilingOps::report(int64_t steps, double step_ms) const {
  const double per = 1.0 / double(std::max<int64_t>(steps, 1));
  std::vector<std::pair<std::pair<std::string, std::string>, Row>> rows(rows_.begin(), rows_.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return x.second.seconds > y.second.seconds; });
  double total = 0;
  std::map<std::string, double> by_phase;
  for (const auto& [key, r] : rows) {
    total += r.seconds;
    by_phase[key.first] += r.seconds;
  }
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-10s %-44s %8s %10s %7s %12s\n", "phase", "op", "calls",
                "ms/step", "share", "rate");
  os << line;
  for (const auto& [key, r] : rows) {
    char rate[32] = "";
    const double fs = r.seconds > 0 ? r.flops / r.seconds : 0;
    if (fs >= 1e12) std::snprintf(rate, sizeof rate, "%.1f TFLOP/s", fs / 1e12);
    else if (fs > 0) std::snprintf(rate, sizeof rate, "%.1f GFLOP/s", fs / 1e9);
    std::snprintf(line, sizeof line, "%-10s %-44s %8.1f %10.3f %6.1f%% %12s\n", key.first.c_str(),
                  key.second.c_str(), double(r.calls) * per, 1e3 * r.seconds * per,
                  total > 0 ? 100.0 * r.seconds / total : 0.0, rate);
    os << line;
  }
  for (const auto& [phase, s] : by_phase) {
    std::snprintf(line, sizeof line, "%-10s %-44s %8s %10.3f %6.1f%%\n", phase.c_str(), "(all ops)",
                  "", 1e3 * s * per, total > 0 ? 100.0 * s / total : 0.0);
    os << line;
  }
  std::snprintf(line, sizeof line, "profiled ops: %.3f ms per step", 1e3 * total * per);
  os << line;
  if (step_ms > 0) {
    std::snprintf(line, sizeof line, " (the unprofiled step: %.3f ms; the difference is the "
                  "host-device overlap the profile gives up and the host's own time)", step_ms);
    os << line;
  }
  os << "\n";
  return os.str();
}

void ProfilingOps::to_host(void* dst, const Tensor& src) {
  timed("to_host", [&] { inner_.to_host(dst, src); });
}
void ProfilingOps::from_host(const Tensor& dst, const void* src) {
  timed("from_host", [&] { inner_.from_host(dst, src); });
}

}  // namespace mousse
