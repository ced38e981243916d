#include "optim/matrix_common.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mousse {

namespace {
const Named<UpdateScale> kUpdateScales[] = {{"sqrt_out_in", UpdateScale::sqrt_out_in},
                                            {"keller", UpdateScale::keller},
                                            {"moonlight", UpdateScale::moonlight}};
const Named<QrMethod> kQrMethods[] = {{"auto", QrMethod::automatic},
                                      {"cholesky", QrMethod::cholesky},
                                      {"householder", QrMethod::householder}};
const Named<StatsPrecision> kStatsPrecisions[] = {{"auto", StatsPrecision::automatic},
                                                  {"param", StatsPrecision::param},
                                                  {"tf32", StatsPrecision::tf32},
                                                  {"bf16", StatsPrecision::bf16}};
}  // namespace

UpdateScale parse_update_scale(const ConfigNode& node) {
  return node.choice("update_scale", UpdateScale::sqrt_out_in, kUpdateScales);
}

const char* update_scale_name(UpdateScale s) { return choice_name(kUpdateScales, s); }

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

std::vector<ShapeGroup> group_by_shape(const std::vector<Param*>& params) {
  std::vector<ShapeGroup> groups;
  for (size_t i = 0; i < params.size(); i++) {
    const Shape& s = params[i]->weight.shape;
    MOUSSE_CHECK(s.ndim == 2, params[i]->name, " is not a matrix");
    auto g = std::find_if(groups.begin(), groups.end(),
                          [&](const ShapeGroup& x) { return x.rows == s[0] && x.cols == s[1]; });
    if (g == groups.end()) g = groups.insert(groups.end(), ShapeGroup{s[0], s[1], {}});
    g->index.push_back(i);
  }
  return groups;
}

Tensor scratch_view(const Tensor& flat, Shape s) { return flat.slice(0, s); }

void sum_refresh_failures_to_rank0(const std::vector<json>& saved, int rank, json& out) {
  for (const char* key : {"eigh_failures", "cholesky_qr_failures"}) {
    int64_t sum = 0;
    for (const json& s : saved) sum += s.value(key, int64_t(0));
    out[key] = rank == 0 ? sum : 0;
  }
}

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

double RmsAccumulator::rms() const { return count > 0 ? std::sqrt(sum_sq / count) : 0.0; }

bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

json RmsAccumulator::to_json() const {
  return json{{"update_rms", rms()}, {"update_sum_squares", sum_sq}, {"update_count", count}};
}

int64_t refresh_stack_capacity(int64_t d, int64_t count, size_t elem_bytes) {
  constexpr int64_t kStackBytes = int64_t(16) << 20;
  const int64_t fit = kStackBytes / std::max<int64_t>(1, d * d * int64_t(elem_bytes));
  return std::max<int64_t>(1, std::min(count, fit));
}

QrMethod parse_qr_method(const ConfigNode& node) {
  return node.choice("qr", QrMethod::automatic, kQrMethods);
}

const char* qr_method_name(QrMethod m) { return choice_name(kQrMethods, m); }

StatsPrecision parse_stats_precision(const ConfigNode& node) {
  return node.choice("stats_dtype", StatsPrecision::automatic, kStatsPrecisions);
}

const char* stats_precision_name(StatsPrecision p) { return choice_name(kStatsPrecisions, p); }

std::string stats_precision_describe(StatsPrecision configured, StatsPrecision resolved) {
  std::string s = stats_precision_name(configured);
  if (configured == StatsPrecision::automatic && resolved != StatsPrecision::automatic)
    s += std::string(" (") + stats_precision_name(resolved) + ")";
  return s;
}

StatsPrecision resolve_stats_precision(StatsPrecision p, Device device, DType param_dtype,
                                       const char* who) {
  if (p == StatsPrecision::automatic)
    return device == Device::cuda && param_dtype == DType::f32 ? StatsPrecision::tf32
                                                                : StatsPrecision::param;
  MOUSSE_CHECK(p != StatsPrecision::bf16 || device == Device::cuda, who,
               ": stats_dtype 'bf16' needs the CUDA backend (the CPU computes in f32/f64); use "
               "'tf32' or 'param'");
  MOUSSE_CHECK(p != StatsPrecision::tf32 || param_dtype == DType::f32, who,
               ": stats_dtype 'tf32' needs f32 parameters, these are ", dtype_name(param_dtype),
               "; use 'param'");
  return p;
}

void update_statistics(Ops& ops, const Tensor& out_stat, const Tensor& in_stat, const Tensor& g,
                       double w, double beta, StatsPrecision p, const Tensor& bf16_scratch) {
  MOUSSE_CHECK(p != StatsPrecision::automatic, "update_statistics: precision not resolved");
  if (!out_stat.defined() && !in_stat.defined()) return;
  Tensor x = g;
  if (p == StatsPrecision::bf16) {
    x = bf16_scratch.slice(0, g.shape);
    ops.copy(x, g);
  }
  auto gram = [&](const Tensor& stat, bool gram_of_columns) {  // G Gᵀ, or Gᵀ G
    if (!stat.defined()) return;
    if (p == StatsPrecision::tf32)
      ops.matmul_tf32(stat, x, gram_of_columns, x, !gram_of_columns, w, beta);
    else
      ops.matmul(stat, x, gram_of_columns, x, !gram_of_columns, w, beta);
  };
  gram(out_stat, false);
  gram(in_stat, true);
}

void PowerQrScratch::reserve(Arena& arena, const std::string& category,
                             const std::string& prefix, DType dt, int64_t matrix_elems,
                             int64_t vector_elems, QrMethod method) {
  cholesky = method == QrMethod::cholesky ||
             (method == QrMethod::automatic && arena.device() == Device::cuda);
  const Shape mat{matrix_elems}, vec{vector_elems};
  arena.reserve(p, category, prefix + ".power_a_q", dt, mat);
  arena.reserve(e, category, prefix + ".power_a_q_ordered", dt, mat);
  arena.reserve(est, category, prefix + ".power_rayleigh", dt, vec);
  arena.reserve(idx, category, prefix + ".power_order", DType::i32, vec);
  if (!cholesky) return;
  arena.reserve(x, category, prefix + ".cholesky_qr_x", DType::f64, mat);
  arena.reserve(gram, category, prefix + ".cholesky_qr_gram", DType::f64, mat);
  arena.reserve(inv_norm, category, prefix + ".cholesky_qr_scale", DType::f64, vec);
}

namespace {
// [b, d, d] view of a stack, or of a single [d, d] matrix as b = 1.
Tensor as_stack(const Tensor& t) {
  if (t.shape.ndim == 3) return t;
  MOUSSE_CHECK(t.shape.ndim == 2, "as_stack: expected a [d, d] matrix or a [b, d, d] stack");
  return t.slice(0, Shape{1, t.shape[0], t.shape[1]});
}
}  // namespace

int orthonormalize(Ops& ops, const Tensor& q_in, const Tensor& e_in, const PowerQrScratch& s) {
  const Tensor q = as_stack(q_in), e = as_stack(e_in);
  const int64_t b = e.shape[0], d = e.shape[1];
  MOUSSE_CHECK(e.shape[2] == d && q.shape == e.shape, "orthonormalize: q, e must be [b, d, d]");
  const Tensor x = s.x.slice(0, e.shape), gram = s.gram.slice(0, e.shape);
  const Tensor inv_norm = s.inv_norm.slice(0, Shape{b * d});
  auto mat = [&](const Tensor& t, int64_t k) { return t.slice(k * d * d, Shape{d, d}); };
  auto vec = [&](const Tensor& t, int64_t k) { return t.slice(k * d, Shape{d}); };

  ops.copy(x, e);  // f64
  for (int64_t k = 0; k < b; k++) ops.column_dots(vec(inv_norm, k), mat(x, k), mat(x, k));
  ops.pow_clamped(inv_norm, inv_norm, -0.5, 1e-300);
  for (int64_t k = 0; k < b; k++)
    ops.scale_rows_cols(mat(x, k), mat(x, k), Tensor{}, vec(inv_norm, k));
  // Fukaya et al.'s shift 11 (m n + n (n + 1)) u ‖x‖₂², with m = n = d, u = 2⁻⁵³ and ‖x‖₂² ≤ d.
  const double dd = double(d), shift = 11.0 * (dd * dd + dd * (dd + 1.0)) * 0x1p-53 * dd;
  std::vector<int> status(size_t(b), 0);
  for (int pass = 0; pass < 3; pass++) {
    ops.matmul_batched(gram, x, true, x, false);  // xᵀ x
    if (pass == 0)
      for (int64_t k = 0; k < b; k++) ops.add_to_diagonal(mat(gram, k), shift);
    const std::vector<int> st = ops.cholesky_batched(gram);  // xᵀ x = Rᵀ R
    for (int64_t k = 0; k < b; k++)
      if (st[size_t(k)] != 0) status[size_t(k)] = st[size_t(k)];
    ops.solve_upper_right_batched(x, gram);  // x ← x R⁻¹
  }
  ops.copy(q, x);
  int fallbacks = 0;
  for (int64_t k = 0; k < b; k++)
    if (status[size_t(k)] != 0) {
      ops.qr_orthonormal(mat(q, k), mat(e, k));
      fallbacks++;
    }
  return fallbacks;
}

PowerQrResult power_qr_step(Ops& ops, const Tensor& q_in, const Tensor& a_in,
                            const PowerQrScratch& s) {
  const Tensor q = as_stack(q_in), a = as_stack(a_in);
  const int64_t b = q.shape[0], d = q.shape[1];
  MOUSSE_CHECK(q.shape[2] == d && a.shape == q.shape, "power_qr_step: q, a must be [b, d, d]");
  const Tensor p = s.p.slice(0, q.shape), e = s.e.slice(0, q.shape);
  const Tensor est = s.est.slice(0, Shape{b * d}), idx = s.idx.slice(0, Shape{b * d});
  auto mat = [&](const Tensor& t, int64_t k) { return t.slice(k * d * d, Shape{d, d}); };
  auto vec = [&](const Tensor& t, int64_t k) { return t.slice(k * d, Shape{d}); };

  ops.matmul_batched(p, a, false, q, false);  // a q
  for (int64_t k = 0; k < b; k++)  // diag(qᵀ a q)
    ops.column_dots(vec(est, k), mat(q, k), mat(p, k));
  const std::vector<double> ev = read_vector(ops, est);
  PowerQrResult r;
  std::vector<double> all(size_t(b * d));
  for (int64_t k = 0; k < b; k++) {
    std::vector<int64_t> order(static_cast<size_t>(d));
    std::iota(order.begin(), order.end(), 0);
    const double* evk = ev.data() + k * d;
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t x, int64_t y) { return evk[x] > evk[y]; });
    std::copy(order.begin(), order.end(), all.begin() + k * d);
    r.order.push_back(std::move(order));
  }
  write_vector(ops, idx, all);
  for (int64_t k = 0; k < b; k++)
    ops.gather_columns(mat(e, k), mat(p, k), vec(idx, k));  // (a q)[:, σ] = a (q[:, σ])
  if (s.cholesky) {
    r.householder_fallbacks = orthonormalize(ops, q, e, s);
  } else {
    for (int64_t k = 0; k < b; k++) ops.qr_orthonormal(mat(q, k), mat(e, k));
  }
  return r;
}

}  // namespace mousse
