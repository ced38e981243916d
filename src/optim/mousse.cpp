#include "optim/mousse.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

namespace mousse {

namespace {
// Bytes of one stacked input of a batched refresh (the eigenvector output takes as much again).
constexpr int64_t kEighBatchBytes = int64_t(64) << 20;
int64_t eigh_batch_capacity(int64_t d, int64_t count, size_t esz) {
  const int64_t fit = kEighBatchBytes / std::max<int64_t>(1, d * d * int64_t(esz));
  return std::max<int64_t>(1, std::min(count, fit));
}

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
  const std::string wd = node.choice("whiten_dtype", "auto", {"auto", "param", "bf16"});
  whiten_dtype = wd == "bf16" ? OrthoDtype::bf16 : wd == "param" ? OrthoDtype::param
               : OrthoDtype::automatic;
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
                "whiten=%s whiten_dtype=%s trace_normalize=%s pc_bias_correction=%s grafting=%s "
                "orthogonalizer=%s update_scale=%s weight_decay=%g",
                momentum, nesterov ? "true" : "false", beta_pc, eps, alpha,
                (long long)update_interval, side_name(whiten),
                whiten_dtype == OrthoDtype::bf16 ? "bf16"
                : whiten_dtype == OrthoDtype::param ? "param" : "auto",
                trace_normalize ? "true" : "false",
                pc_bias_correction ? "true" : "false", grafting ? "true" : "false",
                ortho_.options().describe().c_str(), update_scale_name(scale), weight_decay);
  return buf;
}

void Mousse::reserve_state(Arena& arena, const std::vector<Param*>& params) {
  st_.clear();
  st_.resize(params.size());
  groups_.clear();
  const bool q16 = whiten_dtype == OrthoDtype::bf16 ||
                   (whiten_dtype == OrthoDtype::automatic && arena.device() == Device::cuda);
  MOUSSE_CHECK(!q16 || arena.device() == Device::cuda,
               "mousse: whiten_dtype 'bf16' needs the CUDA backend (the CPU computes in f32/f64)");
  const DType qdt = q16 ? DType::bf16 : (params.empty() ? DType::f32 : params[0]->weight.dtype);
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
      arena.reserve(f.basis, "optimizer", std::string("mousse.Q") + tag + "." + p.name, qdt,
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
  if (q16) arena.reserve(cur16_, c, "mousse.whiten_bf16", DType::bf16, Shape{max_mn});
  arena.reserve(s1_, c, "mousse.scratch1", dt, Shape{max_mn});
  arena.reserve(s2_, c, "mousse.scratch2", dt, Shape{max_mn});
  if (max_d > 0) {
    arena.reserve(sq1_, c, "mousse.scratch_sq1", dt, Shape{max_d * max_d});
    arena.reserve(sq2_, c, "mousse.scratch_sq2", dt, Shape{max_d * max_d});
    arena.reserve(lam_, c, "mousse.scratch_eigenvalues", dt, Shape{max_d});
    // Batched refresh: factors of one size are eigendecomposed kEighBatchBytes at a time
    // (at least one of the largest).
    std::map<int64_t, int64_t> count;
    for (const State& st : st_)
      for (const Factor* f : {&st.out, &st.in})
        if (f->on) count[f->dim]++;
    int64_t eig_mat = 0, eig_vec = 0;
    for (auto [d, k] : count) {
      const int64_t cap = eigh_batch_capacity(d, k, dtype_size(dt));
      eig_mat = std::max(eig_mat, cap * d * d);
      eig_vec = std::max(eig_vec, cap * d);
    }
    arena.reserve(eig_a_, c, "mousse.eigh_batch_a", dt, Shape{eig_mat});
    arena.reserve(eig_v_, c, "mousse.eigh_batch_vectors", dt, Shape{eig_mat});
    arena.reserve(eig_w_, c, "mousse.eigh_batch_values", dt, Shape{eig_vec});
  }
  ortho_.reserve(arena, "mousse", dt);
}

void Mousse::damped_factor(Ops& ops, const Tensor& a, const Factor& f) {
  ops.copy(a, f.stat);
  if (trace_normalize) {  // a *= d / (tr + ε), the trace staying on the device
    ops.trace_to(tr_, f.stat);
    ops.scale_by_ratio(a, Tensor{}, tr_, 1.0, double(f.dim), 1.0, eps);
  } else if (pc_bias_correction) {
    ops.scale(a, 1.0 / (1.0 - std::pow(beta_pc, double(t_ + 1))));
  }
  ops.add_to_diagonal(a, eps);
}

void Mousse::refresh(Ops& ops, Factor& f) {
  const int64_t d = f.dim;
  Tensor a = scratch_view(sq1_, Shape{d, d}), v = scratch_view(sq2_, Shape{d, d});
  Tensor lam = scratch_view(lam_, Shape{d});
  damped_factor(ops, a, f);
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

// All factors at once: per size, stacks of trace-normalised, damped factors go through ONE
// ops.eigh_batched (one synchronisation per stack instead of several per factor). A factor
// whose batched decomposition fails is redone alone by refresh() (f32, then the f64 retry);
// only a failure there counts.
void Mousse::refresh_all(Ops& ops) {
  std::map<int64_t, std::vector<Factor*>> by_dim;
  for (State& st : st_)
    for (Factor* f : {&st.out, &st.in})
      if (f->on) by_dim[f->dim].push_back(f);
  const DType dt = eig_a_.dtype;
  for (auto& [d, fs] : by_dim) {
    const int64_t cap = eigh_batch_capacity(d, int64_t(fs.size()), dtype_size(dt));
    for (size_t first = 0; first < fs.size(); first += size_t(cap)) {
      const int64_t b = std::min<int64_t>(cap, int64_t(fs.size() - first));
      const Tensor A = eig_a_.slice(0, Shape{b, d, d}), V = eig_v_.slice(0, Shape{b, d, d});
      const Tensor W = eig_w_.slice(0, Shape{b, d});
      for (int64_t k = 0; k < b; k++) {
        const Factor& f = *fs[first + size_t(k)];
        damped_factor(ops, A.slice(k * d * d, Shape{d, d}), f);
      }
      ops.synchronize();
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<int> status = ops.eigh_batched(V, W, A);  // synchronises
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      eigh_seconds_total_ += secs;
      eigh_seconds_window_ += secs;
      const std::vector<double> lam = read_vector(ops, W);  // for the condition numbers
      for (int64_t k = 0; k < b; k++) {
        Factor& f = *fs[first + size_t(k)];
        if (status[size_t(k)] != 0) {
          refresh(ops, f);
          continue;
        }
        ops.copy(f.basis, V.slice(k * d * d, Shape{d, d}));
        ops.pow_clamped(f.scaling, W.slice(k * d, Shape{d}), -alpha, eps);
        const auto lo = lam.begin() + k * d, hi = lo + d;
        f.cond = std::max(*std::max_element(lo, hi), eps) / std::max(*std::min_element(lo, hi), eps);
      }
    }
  }
}

// out (=) op(q) · x (q_left) or x · op(q): q a basis (f32, or bf16 with whiten_dtype bf16), x
// and out in the parameter dtype. A bf16 basis multiplies a bf16 copy of x (f32 accumulate).
void Mousse::basis_gemm(Ops& ops, const Tensor& out, const Tensor& q, bool trans_q,
                        const Tensor& x, bool q_left) {
  Tensor xx = x;
  if (q.dtype != x.dtype) {
    xx = cur16_.slice(0, x.shape);
    ops.copy(xx, x);
  }
  if (q_left) ops.matmul(out, q, trans_q, xx, false);
  else ops.matmul(out, xx, false, q, trans_q);
}

void Mousse::step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) {
  MOUSSE_CHECK(params.size() == st_.size(), "Mousse: params changed since reserve_state");
  const bool do_refresh = t_ % update_interval == 0;
  RmsAccumulator rms;
  json precond = json::object();
  // 2. curvature statistics of every matrix: F ← β_pc F + (1 − β_pc) g gᵀ (g = grad_scale·G)
  const double w = (1.0 - beta_pc) * s.grad_scale * s.grad_scale;
  for (size_t i = 0; i < params.size(); i++) {
    const Param& p = *params[i];
    State& st = st_[i];
    if (st.out.on) {
      Tensor gg = scratch_view(sq1_, Shape{p.rows, p.rows});
      ops.matmul(gg, p.grad, false, p.grad, true);
      ops.axpby(st.out.stat, w, gg, beta_pc);
    }
    if (st.in.on) {
      Tensor gg = scratch_view(sq1_, Shape{p.cols, p.cols});
      ops.matmul(gg, p.grad, true, p.grad, false);
      ops.axpby(st.in.stat, w, gg, beta_pc);
    }
    if (t_ == 0)  // a failed first eigh then leaves the identity basis (plain Muon)
      for (Factor* f : {&st.out, &st.in}) {
        if (!f->on) continue;
        ops.fill(f->basis, 0.0);
        ops.add_to_diagonal(f->basis, 1.0);
        ops.fill(f->scaling, 1.0);
      }
  }
  // 3. spectral decompositions every T steps (the first included), from this step's statistics
  if (do_refresh) refresh_all(ops);

  for (const Group& grp : groups_) {
    const int64_t batch = int64_t(grp.index.size()), m = grp.rows, n = grp.cols;
    const Shape sh{m, n};
    const Tensor S1 = scratch_view(s1_, sh), S2 = scratch_view(s2_, sh);
    auto other = [&](const Tensor& t) { return t.data == S1.data ? S2 : S1; };
    auto slot = [&](int64_t j) { return stack_.slice(j * m * n, sh); };

    // Phase 1, per matrix: momentum and whitening into the stack.
    for (int64_t j = 0; j < batch; j++) {
      Param& p = *params[grp.index[size_t(j)]];
      State& st = st_[grp.index[size_t(j)]];

      // 1. momentum (Nesterov look-ahead lands in S1)
      Tensor cur = momentum_update(ops, st.m, p.grad, momentum, nesterov, s.grad_scale, S1);

      // 4. whiten: M̃ = diag(s_L) Q_Lᵀ M Q_R diag(s_R), the last product landing in the stack
      const Tensor dst = slot(j);
      if (st.out.on) {
        Tensor d = st.in.on ? other(cur) : dst;
        basis_gemm(ops, d, st.out.basis, true, cur, true);
        cur = d;
      }
      if (st.in.on) {
        basis_gemm(ops, dst, st.in.basis, false, cur, false);
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
        basis_gemm(ops, S1, st.out.basis, false, cur, true);
        cur = S1;
      }
      if (st.in.on) {
        Tensor d = other(cur);
        basis_gemm(ops, d, st.in.basis, true, cur, false);
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
