#include "optim/mousse.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace mousse {

namespace {
const char* side_name(Mousse::Side s) {
  switch (s) {
    case Mousse::Side::both: return "both";
    case Mousse::Side::output: return "output";
    case Mousse::Side::input: return "input";
    case Mousse::Side::smaller: return "smaller";
  }
  return "?";
}
}  // namespace

Mousse::Mousse(const ConfigNode& node) {
  momentum = node.number("momentum", momentum);
  nesterov = node.boolean("nesterov", nesterov);
  beta_pc = node.number("beta_pc", beta_pc);
  eps = node.number("eps", eps);
  alpha = node.number("alpha", alpha);
  update_interval = node.integer("update_interval", update_interval);
  const std::string w = node.choice("whiten", "both", {"both", "output", "input", "smaller"});
  whiten = w == "output" ? Side::output : w == "input" ? Side::input
         : w == "smaller" ? Side::smaller : Side::both;
  trace_normalize = node.boolean("trace_normalize", trace_normalize);
  pc_bias_correction = node.boolean("pc_bias_correction", pc_bias_correction);
  grafting = node.boolean("grafting", grafting);
  ortho_ = Orthogonalizer(parse_ortho_options(node));
  scale = parse_update_scale(node, "update_scale", "sqrt_out_in");
  weight_decay = node.number("weight_decay", weight_decay);
  if (!(momentum >= 0 && momentum < 1)) node.error("momentum", "must be in [0, 1)");
  if (!(beta_pc >= 0 && beta_pc < 1)) node.error("beta_pc", "must be in [0, 1)");
  if (!(eps > 0)) node.error("eps", "must be > 0");
  if (!(alpha >= 0 && alpha <= 1)) node.error("alpha", "must be in [0, 1]");
  if (update_interval < 1) node.error("update_interval", "must be >= 1");
  if (weight_decay < 0) node.error("weight_decay", "must be >= 0");
}

std::string Mousse::describe() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "mousse momentum=%g nesterov=%s beta_pc=%g eps=%g alpha=%g update_interval=%lld "
                "whiten=%s trace_normalize=%s pc_bias_correction=%s grafting=%s "
                "orthogonalizer=%s update_scale=%s weight_decay=%g",
                momentum, nesterov ? "true" : "false", beta_pc, eps, alpha,
                (long long)update_interval, side_name(whiten), trace_normalize ? "true" : "false",
                pc_bias_correction ? "true" : "false", grafting ? "true" : "false",
                ortho_.options().describe().c_str(), update_scale_name(scale), weight_decay);
  return buf;
}

void Mousse::reserve_state(Arena& arena, const std::vector<Param*>& params) {
  st_.clear();
  st_.resize(params.size());
  groups_.clear();
  int64_t max_mn = 0, max_d = 0;
  DType dt = DType::f32;
  for (size_t i = 0; i < params.size(); i++) {
    const Param& p = *params[i];
    MOUSSE_CHECK(p.weight.shape.ndim == 2, "mousse: ", p.name, " is not a matrix");
    State& s = st_[i];
    s.name = p.name;
    dt = p.weight.dtype;
    arena.reserve(s.m, "optimizer", "mousse.m." + p.name, dt, p.weight.shape);
    const int64_t m = p.rows, n = p.cols;
    bool use_out = whiten == Side::both || whiten == Side::output,
         use_in = whiten == Side::both || whiten == Side::input;
    if (whiten == Side::smaller) {
      use_out = m <= n;
      use_in = !use_out;
    }
    auto plan = [&](Factor& f, bool on, int64_t d, const char* tag) {
      f.on = on;
      f.dim = d;
      if (!on) return;
      arena.reserve(f.stat, "optimizer", std::string("mousse.") + tag + "." + p.name, dt,
                    Shape{d, d});
      arena.reserve(f.basis, "optimizer", std::string("mousse.Q") + tag + "." + p.name, dt,
                    Shape{d, d});
      arena.reserve(f.scaling, "optimizer", std::string("mousse.s") + tag + "." + p.name, dt,
                    Shape{d});
      max_d = std::max(max_d, d);
    };
    plan(s.out, use_out, m, "L");
    plan(s.in, use_in, n, "R");
    max_mn = std::max(max_mn, m * n);
    auto g = std::find_if(groups_.begin(), groups_.end(),
                          [&](const Group& x) { return x.rows == m && x.cols == n; });
    if (g == groups_.end()) g = groups_.insert(groups_.end(), Group{m, n, {}});
    g->index.push_back(i);
  }
  if (max_mn == 0) return;
  int64_t max_stack = 0, max_batch = 0;
  for (const Group& g : groups_) {
    const int64_t b = int64_t(g.index.size());
    ortho_.plan(b, g.rows, g.cols);
    max_stack = std::max(max_stack, b * g.rows * g.cols);
    max_batch = std::max(max_batch, b);
  }
  const std::string c = "optimizer_scratch";
  arena.reserve(stack_, c, "mousse.stack", dt, Shape{max_stack});
  arena.reserve(gamma_ssq_, c, "mousse.gamma_sum_squares", dt, Shape{max_batch});
  arena.reserve(u_ssq_, c, "mousse.update_sum_squares", dt, Shape{max_batch});
  arena.reserve(tr_, c, "mousse.trace", dt, Shape{1});
  arena.reserve(s1_, c, "mousse.scratch1", dt, Shape{max_mn});
  arena.reserve(s2_, c, "mousse.scratch2", dt, Shape{max_mn});
  if (max_d > 0) {
    arena.reserve(sq1_, c, "mousse.scratch_sq1", dt, Shape{max_d * max_d});
    arena.reserve(sq2_, c, "mousse.scratch_sq2", dt, Shape{max_d * max_d});
    arena.reserve(lam_, c, "mousse.scratch_eigenvalues", dt, Shape{max_d});
  }
  ortho_.reserve(arena, "mousse", dt);
}

void Mousse::refresh(Ops& ops, Factor& f) {
  const int64_t d = f.dim;
  Tensor a = scratch_view(sq1_, Shape{d, d}), v = scratch_view(sq2_, Shape{d, d});
  Tensor lam = scratch_view(lam_, Shape{d});
  ops.copy(a, f.stat);
  if (trace_normalize) {  // a *= d / (tr + ε), the trace staying on the device
    ops.trace_to(tr_, f.stat);
    ops.scale_by_ratio(a, Tensor{}, tr_, 1.0, double(d), 1.0, eps);
  } else if (pc_bias_correction) {
    ops.scale(a, 1.0 / (1.0 - std::pow(beta_pc, double(t_ + 1))));
  }
  ops.add_to_diagonal(a, eps);
  ops.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = ops.eigh(v, lam, a);
  std::vector<double> l = read_vector(ops, lam);  // synchronises
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  eigh_seconds_total_ += dt;
  eigh_seconds_window_ += dt;
  bool ok = rc == 0;
  for (double e : l) ok = ok && std::isfinite(e);
  if (!ok) {
    failures_++;  // keep the previous basis and scalings
    return;
  }
  ops.copy(f.basis, v);
  ops.pow_clamped(f.scaling, lam, -alpha, eps);
  const double lmin = std::max(*std::min_element(l.begin(), l.end()), eps);
  const double lmax = std::max(*std::max_element(l.begin(), l.end()), eps);
  f.cond = lmax / lmin;
}

void Mousse::step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) {
  MOUSSE_CHECK(params.size() == st_.size(), "Mousse: params changed since reserve_state");
  const bool do_refresh = t_ % update_interval == 0;
  RmsAccumulator rms;
  json precond = json::object();
  for (const Group& grp : groups_) {
    const int64_t batch = int64_t(grp.index.size()), m = grp.rows, n = grp.cols;
    const Shape sh{m, n};
    const Tensor S1 = scratch_view(s1_, sh), S2 = scratch_view(s2_, sh);
    auto other = [&](const Tensor& t) { return t.data == S1.data ? S2 : S1; };
    auto slot = [&](int64_t j) { return stack_.slice(j * m * n, sh); };

    // Phase 1, per matrix: momentum, statistics, refresh, whitening into the stack.
    for (int64_t j = 0; j < batch; j++) {
      Param& p = *params[grp.index[size_t(j)]];
      State& st = st_[grp.index[size_t(j)]];

      // 1. momentum (Nesterov look-ahead lands in S1)
      Tensor cur = momentum_update(ops, st.m, p.grad, momentum, nesterov, s.grad_scale, S1);

      // 2. curvature statistics: F ← β_pc F + (1 − β_pc) g gᵀ (g = grad_scale·G)
      const double w = (1.0 - beta_pc) * s.grad_scale * s.grad_scale;
      if (st.out.on) {
        Tensor gg = scratch_view(sq1_, Shape{m, m});
        ops.matmul(gg, p.grad, false, p.grad, true);
        ops.axpby(st.out.stat, w, gg, beta_pc);
      }
      if (st.in.on) {
        Tensor gg = scratch_view(sq1_, Shape{n, n});
        ops.matmul(gg, p.grad, true, p.grad, false);
        ops.axpby(st.in.stat, w, gg, beta_pc);
      }

      // 3. spectral decomposition every T steps (the first included)
      for (Factor* f : {&st.out, &st.in}) {
        if (!f->on) continue;
        if (t_ == 0) {  // a failed first eigh then leaves the identity basis (plain Muon)
          ops.fill(f->basis, 0.0);
          ops.add_to_diagonal(f->basis, 1.0);
          ops.fill(f->scaling, 1.0);
        }
        if (do_refresh) refresh(ops, *f);
      }

      // 4. whiten: M̃ = diag(s_L) Q_Lᵀ M Q_R diag(s_R), the last product landing in the stack
      const Tensor dst = slot(j);
      if (st.out.on) {
        Tensor d = st.in.on ? other(cur) : dst;
        ops.matmul(d, st.out.basis, true, cur, false);
        cur = d;
      }
      if (st.in.on) {
        ops.matmul(dst, cur, false, st.in.basis, false);
        cur = dst;
      }
      if (cur.data != dst.data) ops.copy(dst, cur);
      ops.scale_rows_cols(dst, dst, st.out.on ? st.out.scaling : Tensor{},
                          st.in.on ? st.in.scaling : Tensor{});
    }

    // Phase 2: orthogonalise the whole shape group in the whitened frame; γ_j = ‖M̄_j‖_F².
    const Tensor stack = stack_.slice(0, Shape{batch, m, n});
    ortho_.run(ops, stack, stack);
    const Tensor gssq = gamma_ssq_.slice(0, Shape{batch});
    if (grafting) ops.sum_squares_batched(gssq, stack);

    // Phase 3, per matrix: un-whiten, graft, update.
    const double sc = update_scale(scale, m, n);
    for (int64_t j = 0; j < batch; j++) {
      Param& p = *params[grp.index[size_t(j)]];
      State& st = st_[grp.index[size_t(j)]];
      const Tensor sl = st.out.on ? st.out.scaling : Tensor{};
      const Tensor sr = st.in.on ? st.in.scaling : Tensor{};
      // 6. un-whiten with the same −α power: U = Q_L diag(s_L) M̄ diag(s_R) Q_Rᵀ
      Tensor cur = slot(j);
      ops.scale_rows_cols(cur, cur, sl, sr);
      if (st.out.on) {
        ops.matmul(S1, st.out.basis, false, cur, false);
        cur = S1;
      }
      if (st.in.on) {
        Tensor d = other(cur);
        ops.matmul(d, cur, false, st.in.basis, true);
        cur = d;
      }
      // 7. grafting: Muon's magnitude γ in the original frame (U kept when ‖U‖ = 0 / not finite)
      if (grafting) {
        const Tensor ussq = u_ssq_.slice(j, Shape{1});
        ops.sum_squares_batched(ussq, cur);
        ops.scale_by_ratio(cur, gssq.slice(j, Shape{1}), ussq, 0.5, 1.0, 1.0, 0.0);
      }
      // 8. W ← W(1 − lr·wd) − lr·scale·U
      if (s.diagnostics) {  // host values on logging steps only
        rms.add(sc * sc * ops.sum_squares(cur), cur.numel());
        json e = json::object();
        if (st.out.on) {
          e["L_cond"] = st.out.cond;
          e["L_rms"] = tensor_rms(ops, st.out.stat);
        }
        if (st.in.on) {
          e["R_cond"] = st.in.cond;
          e["R_rms"] = tensor_rms(ops, st.in.stat);
        }
        precond[st.name] = e;
      }
      apply_matrix_update(ops, p.weight, cur, s.lr, weight_decay, sc);
    }
  }
  t_++;
  if (s.diagnostics) {
    diag_ = json{{"update_rms", rms.rms()},
                 {"eigh_seconds", eigh_seconds_window_},
                 {"eigh_seconds_total", eigh_seconds_total_},
                 {"eigh_failures", failures_},
                 {"precond", precond}};
    eigh_seconds_window_ = 0.0;
  }
}

json Mousse::save_extra() const {
  json cond = json::object();
  for (auto& s : st_) cond[s.name] = {s.out.cond, s.in.cond};
  return json{{"t", t_},
              {"eigh_failures", failures_},
              {"eigh_seconds_total", eigh_seconds_total_},
              {"cond", cond}};
}

void Mousse::load_extra(const json& j) {
  t_ = j.value("t", int64_t(0));
  failures_ = j.value("eigh_failures", int64_t(0));
  eigh_seconds_total_ = j.value("eigh_seconds_total", 0.0);
  eigh_seconds_window_ = 0.0;
  if (j.contains("cond"))
    for (auto& s : st_)
      if (j["cond"].contains(s.name)) {
        s.out.cond = j["cond"][s.name][0].get<double>();
        s.in.cond = j["cond"][s.name][1].get<double>();
      }
}

}  // namespace mousse
