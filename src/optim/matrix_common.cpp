#include "optim/matrix_common.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mousse {

UpdateScale parse_update_scale(const ConfigNode& node, const std::string& key,
                               const std::string& def) {
  const std::string s = node.choice(key, def, {"sqrt_out_in", "keller", "moonlight"});
  if (s == "keller") return UpdateScale::keller;
  if (s == "moonlight") return UpdateScale::moonlight;
  return UpdateScale::sqrt_out_in;
}

const char* update_scale_name(UpdateScale s) {
  switch (s) {
    case UpdateScale::sqrt_out_in: return "sqrt_out_in";
    case UpdateScale::keller: return "keller";
    case UpdateScale::moonlight: return "moonlight";
  }
  return "?";
}

double update_scale(UpdateScale s, int64_t out, int64_t in) {
  const double o = double(out), i = double(in);
  switch (s) {
    case UpdateScale::sqrt_out_in: return std::sqrt(o / i);
    case UpdateScale::keller: return std::sqrt(std::max(1.0, o / i));
    case UpdateScale::moonlight: return 0.2 * std::sqrt(std::max(o, i));
  }
  return 1.0;
}

Tensor momentum_update(Ops& ops, const Tensor& m, const Tensor& g, double beta, bool nesterov,
                       double grad_scale, const Tensor& scratch) {
  ops.axpby(m, grad_scale, g, beta);  // M ← βM + g
  if (!nesterov) return m;
  ops.copy(scratch, m);
  ops.axpby(scratch, grad_scale, g, beta);  // g + βM
  return scratch;
}

void apply_matrix_update(Ops& ops, const Tensor& w, const Tensor& u, double lr, double wd,
                         double scale) {
  ops.axpby(w, -lr * scale, u, 1.0 - lr * wd);
}

Tensor scratch_view(const Tensor& flat, Shape s) { return flat.slice(0, s); }

std::vector<double> read_vector(Ops& ops, const Tensor& t) {
  const size_t n = size_t(t.numel());
  std::vector<double> out(n);
  if (t.dtype == DType::f64) {
    ops.to_host(out.data(), t);
  } else if (t.dtype == DType::f32) {
    std::vector<float> tmp(n);
    ops.to_host(tmp.data(), t);
    for (size_t i = 0; i < n; i++) out[i] = tmp[i];
  } else if (t.dtype == DType::i32) {
    std::vector<int32_t> tmp(n);
    ops.to_host(tmp.data(), t);
    for (size_t i = 0; i < n; i++) out[i] = tmp[i];
  } else {
    fail("read_vector: unsupported dtype ", dtype_name(t.dtype));
  }
  return out;
}

void write_vector(Ops& ops, const Tensor& t, const std::vector<double>& v) {
  MOUSSE_CHECK(int64_t(v.size()) == t.numel(), "write_vector: size mismatch");
  const size_t n = v.size();
  if (t.dtype == DType::f64) {
    ops.from_host(t, v.data());
  } else if (t.dtype == DType::f32) {
    std::vector<float> tmp(v.begin(), v.end());
    ops.from_host(t, tmp.data());
  } else if (t.dtype == DType::i32) {
    std::vector<int32_t> tmp(n);
    for (size_t i = 0; i < n; i++) tmp[i] = int32_t(v[i]);
    ops.from_host(t, tmp.data());
  } else {
    fail("write_vector: unsupported dtype ", dtype_name(t.dtype));
  }
}

double frobenius(Ops& ops, const Tensor& t) { return std::sqrt(ops.sum_squares(t)); }

double RmsAccumulator::rms() const { return count > 0 ? std::sqrt(sum_sq / count) : 0.0; }

bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

json RmsAccumulator::to_json() const {
  return json{{"update_rms", rms()}, {"update_sum_squares", sum_sq}, {"update_count", count}};
}

std::vector<int64_t> power_qr_step(Ops& ops, const Tensor& q, const Tensor& a, const Tensor& p,
                                   const Tensor& e, const Tensor& est, const Tensor& idx) {
  const int64_t d = q.rows();
  ops.matmul(p, a, false, q, false);  // a q
  ops.column_dots(est, q, p);         // diag(qᵀ a q)
  const std::vector<double> ev = read_vector(ops, est);
  std::vector<int64_t> order(static_cast<size_t>(d));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return ev[size_t(x)] > ev[size_t(y)]; });
  write_vector(ops, idx, std::vector<double>(order.begin(), order.end()));
  ops.gather_columns(e, p, idx);  // (a q)[:, σ] = a (q[:, σ])
  ops.qr_orthonormal(q, e);
  return order;
}

}  // namespace mousse
