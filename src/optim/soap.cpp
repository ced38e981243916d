#include "optim/soap.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace mousse {

Soap::Soap(const ConfigNode& node) {
  read_betas(node, beta1, beta2);
  eps = node.number("eps", eps, NumRange::above(0));
  weight_decay = node.number("weight_decay", weight_decay, NumRange::at_least(0));
  update_interval = node.integer("update_interval", update_interval, {1, kMaxCount});
  beta_pc = node.number("beta_pc", beta_pc, NumRange::right_open(0, 1));
  max_precond_dim = node.integer("max_precond_dim", max_precond_dim, {1, kMaxCount});
  normalize_grads = node.boolean("normalize_grads", normalize_grads);
  correct_bias = node.boolean("correct_bias", correct_bias);
  qr = parse_qr_method(node);
  stats_dtype = parse_stats_precision(node);
}

std::string Soap::describe() const {
  char buf[384];
  std::snprintf(buf, sizeof buf,
                "soap betas=(%g, %g) eps=%g weight_decay=%g update_interval=%lld beta_pc=%g "
                "max_precond_dim=%lld normalize_grads=%s correct_bias=%s qr=%s stats_dtype=%s",
                beta1, beta2, eps, weight_decay, (long long)update_interval, beta_pc,
                (long long)max_precond_dim, normalize_grads ? "true" : "false",
                correct_bias ? "true" : "false", qr_method_name(qr),
                stats_precision_describe(stats_dtype, stats_).c_str());
  return buf;
}

void Soap::reserve_state(Arena& arena, const std::vector<Param*>& params) {
  st_.clear();
  st_.resize(params.size());
  int64_t max_mn = 0, max_d = 0;
  DType dt = DType::f32;
  for (size_t i = 0; i < params.size(); i++) {
    const Param& p = *params[i];
    MOUSSE_CHECK(p.weight.shape.ndim == 2, "soap: ", p.name, " is not a matrix");
    State& s = st_[i];
    dt = p.weight.dtype;
    arena.reserve(s.m, "optimizer", "soap.exp_avg." + p.name, dt, p.weight.shape);
    arena.reserve(s.v, "optimizer", "soap.exp_avg_sq." + p.name, dt, p.weight.shape);
    auto plan = [&](Side& sd, int64_t d, const char* tag) {
      sd.dim = d;
      sd.on = d <= max_precond_dim;
      if (!sd.on) return;
      arena.reserve(sd.gg, "optimizer", std::string("soap.") + tag + "." + p.name, dt,
                    Shape{d, d});
      arena.reserve(sd.q, "optimizer", std::string("soap.Q") + tag + "." + p.name, dt,
                    Shape{d, d});
      max_d = std::max(max_d, d);
    };
    plan(s.out, p.rows, "L");
    plan(s.in, p.cols, "R");
    max_mn = std::max(max_mn, p.weight.numel());
  }
  stats_ = resolve_stats_precision(stats_dtype, arena.device(), dt, "soap");
  if (max_mn == 0) return;
  const std::string c = "optimizer_scratch";
  if (stats_ == StatsPrecision::bf16)
    arena.reserve(g16_, c, "soap.bf16_gradient", DType::bf16, Shape{max_mn});
  arena.reserve(s1_, c, "soap.scratch1", dt, Shape{max_mn});
  arena.reserve(s2_, c, "soap.scratch2", dt, Shape{max_mn});
  arena.reserve(ssq_, c, "soap.sum_squares", dt, Shape{1});
  if (max_d > 0) {
    arena.reserve(sq1_, c, "soap.scratch_sq1", dt, Shape{max_d * max_d});
    arena.reserve(sq2_, c, "soap.scratch_sq2", dt, Shape{max_d * max_d});
    arena.reserve(vec_, c, "soap.scratch_vec", dt, Shape{max_d});
    arena.reserve(idx_, c, "soap.scratch_index", DType::i32, Shape{max_d});
    const RefreshStackSize stack = refresh_stack_size(sized_sides(), dtype_size(dt));
    arena.reserve(stack_gg_, c, "soap.refresh_stack_factors", dt, Shape{stack.matrix_elems});
    arena.reserve(stack_q_, c, "soap.refresh_stack_bases", dt, Shape{stack.matrix_elems});
    power_.reserve(arena, c, "soap", dt, stack.matrix_elems, stack.vector_elems, qr);
  }
}

// Q ← eigenvectors of GG, columns in descending eigenvalue order (eigh(GG + 1e-30 I), flipped).
void Soap::init_basis(Ops& ops, Side& sd) {
  const int64_t d = sd.dim;
  Tensor a = scratch_view(sq1_, Shape{d, d}), vecs = scratch_view(sq2_, Shape{d, d});
  Tensor lam = scratch_view(vec_, Shape{d}), idx = scratch_view(idx_, Shape{d});
  ops.copy(a, sd.gg);
  ops.add_to_diagonal(a, 1e-30);
  const int rc = ops.eigh(vecs, lam, a);
  const std::vector<double> l = read_vector(ops, lam);
  if (rc != 0 || !all_finite(l)) {
    failures_++;
    ops.fill(sd.q, 0.0);
    ops.add_to_diagonal(sd.q, 1.0);
    return;
  }
  std::vector<double> rev(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; j++) rev[size_t(j)] = double(d - 1 - j);
  write_vector(ops, idx, rev);
  ops.gather_columns(sd.q, vecs, idx);
}

std::vector<std::pair<int64_t, Soap::SideRef>> Soap::sized_sides() {
  std::vector<std::pair<int64_t, SideRef>> out;
  for (State& st : st_) {
    if (st.out.on) out.push_back({st.out.dim, {&st.out, &st, true}});
    if (st.in.on) out.push_back({st.in.dim, {&st.in, &st, false}});
  }
  return out;
}

// One power iteration + QR per factor (the reference's get_orthogonal_matrix_QR), factors of
// one size stacked; v permuted by each factor's σ along its dimension.
void Soap::refresh_all(Ops& ops) {
  const size_t esz = dtype_size(stack_q_.dtype);
  for_each_refresh_stack(sized_sides(), esz, [&](int64_t d, const std::vector<SideRef>& refs) {
    const int64_t b = int64_t(refs.size());
    const Tensor A = stack_gg_.slice(0, Shape{b, d, d}), Q = stack_q_.slice(0, Shape{b, d, d});
    for (int64_t k = 0; k < b; k++) {
      ops.copy(A.slice(k * d * d, Shape{d, d}), refs[size_t(k)].side->gg);
      ops.copy(Q.slice(k * d * d, Shape{d, d}), refs[size_t(k)].side->q);
    }
    cholesky_qr_failures_ += power_qr_step(ops, Q, A, power_).householder_fallbacks;
    for (int64_t k = 0; k < b; k++) {
      const SideRef& r = refs[size_t(k)];
      ops.copy(r.side->q, Q.slice(k * d * d, Shape{d, d}));
      const Tensor idx = power_.idx.slice(k * d, Shape{d});  // σ of this factor
      const Tensor& v = r.st->v;
      const Tensor tmp = scratch_view(s1_, v.shape);
      if (r.rows) ops.gather_rows(tmp, v, idx);
      else ops.gather_columns(tmp, v, idx);
      ops.copy(v, tmp);
    }
  });
}

// dst (=) Q_Lᵀ src Q_R (back=false) or Q_L src Q_Rᵀ (back=true); s2 is the intermediate.
// dst may alias src.
void Soap::rotate(Ops& ops, const Tensor& dst, const Tensor& src, const State& st, bool back) {
  const Tensor mid = scratch_view(s2_, src.shape);
  MOUSSE_CHECK(dst.data != mid.data && src.data != mid.data, "soap: rotate aliasing");
  if (st.out.on && st.in.on) {
    ops.matmul(mid, st.out.q, !back, src, false);
    ops.matmul(dst, mid, false, st.in.q, back);
  } else if (st.out.on) {
    ops.matmul(mid, st.out.q, !back, src, false);
    ops.copy(dst, mid);
  } else if (st.in.on) {
    ops.matmul(mid, src, false, st.in.q, back);
    ops.copy(dst, mid);
  } else if (dst.data != src.data) {
    ops.copy(dst, src);
  }
}

void Soap::step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) {
  MOUSSE_CHECK(params.size() == st_.size(), "Soap: params changed since reserve_state");
  const bool first = calls_ == 0;
  if (!first) k_++;
  const bool refresh = !first && k_ % update_interval == 0;
  const double gs = s.grad_scale;
  const double bc1 = 1.0 - std::pow(beta1, double(k_)), bc2 = 1.0 - std::pow(beta2, double(k_));
  const double step_size = correct_bias && !first ? s.lr * std::sqrt(bc2) / bc1 : s.lr;
  RmsAccumulator rms;
  for (size_t i = 0; i < params.size(); i++) {
    Param& p = *params[i];
    State& st = st_[i];
    const Shape sh = p.weight.shape;
    const Tensor S1 = scratch_view(s1_, sh);
    if (!first) {
      // Adam in the eigenbasis
      rotate(ops, S1, p.grad, st, false);  // G' (unscaled)
      ops.axpby(st.m, (1.0 - beta1) * gs, S1, beta1);
      if (gs != 1.0) ops.scale(S1, gs);
      ops.ema_square(st.v, S1, beta2);
      ops.adam_direction(S1, st.m, st.v, eps, 1.0, 1.0);  // m / (sqrt(v) + eps)
      rotate(ops, S1, S1, st, true);  // N = Q_L (...) Q_Rᵀ, back in the parameter space
      if (normalize_grads) {  // N ← N / (RMS(N) + 1e-30), the norm staying on the device
        const double sqn = std::sqrt(double(S1.numel()));
        ops.sum_squares_batched(ssq_, S1);
        ops.scale_by_ratio(S1, Tensor{}, ssq_, 0.5, sqn, 1.0, 1e-30 * sqn);
      }
      if (s.diagnostics)  // host value on logging steps only
        rms.add(ops.sum_squares(S1) * (step_size / s.lr) * (step_size / s.lr), S1.numel());
      ops.axpby(p.weight, -step_size, S1, 1.0);
      if (weight_decay > 0) ops.scale(p.weight, 1.0 - s.lr * weight_decay);
    }
    // update the preconditioner: exp_avg leaves the old basis first when the basis changes
    if (refresh) rotate(ops, st.m, st.m, st, true);
    // L ← w·G Gᵀ + β_pc·L, R likewise (update_statistics, shared with Mousse)
    update_statistics(ops, st.out.on ? st.out.gg : Tensor{}, st.in.on ? st.in.gg : Tensor{},
                      p.grad, (1.0 - beta_pc) * gs * gs, beta_pc, stats_, g16_);
    if (first) {
      if (st.out.on) init_basis(ops, st.out);
      if (st.in.on) init_basis(ops, st.in);
    }
  }
  // New bases for every factor at once (the statistics include this step's gradient), then
  // exp_avg enters them.
  if (refresh) {
    refresh_all(ops);
    for (State& st : st_) rotate(ops, st.m, st.m, st, false);
  }
  calls_++;
  if (s.diagnostics) {
    diag_ = rms.to_json();
    diag_["eigh_failures"] = failures_;
    diag_["cholesky_qr_failures"] = cholesky_qr_failures_;
  }
}

json Soap::save_extra() const {
  return json{{"calls", calls_},
              {"k", k_},
              {"eigh_failures", failures_},
              {"cholesky_qr_failures", cholesky_qr_failures_}};
}

void Soap::load_extra(const json& j) {
  calls_ = j.value("calls", int64_t(0));
  k_ = j.value("k", int64_t(0));
  failures_ = j.value("eigh_failures", int64_t(0));
  cholesky_qr_failures_ = j.value("cholesky_qr_failures", int64_t(0));
}

// The step counters are alike on every rank; the failure counts are each rank's own (summed in
// the diagnostics), so rank 0 takes their total.
json Soap::merge_extra(const std::vector<json>& saved, int rank) const {
  if (saved.empty()) return json::object();
  json out = saved[0];
  sum_refresh_failures_to_rank0(saved, rank, out);
  for (const json& s : saved)
    MOUSSE_CHECK(s.value("calls", int64_t(-1)) == out.value("calls", int64_t(-1)),
                 "soap: the ranks of the checkpoint saved different step counts");
  return out;
}

}  // namespace mousse
