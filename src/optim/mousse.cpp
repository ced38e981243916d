#include "optim/mousse.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

namespace mousse {

namespace {
const Named<Mousse::Side> kSides[] = {{"both", Mousse::Side::both},
                                      {"output", Mousse::Side::output},
                                      {"input", Mousse::Side::input},
                                      {"smaller", Mousse::Side::smaller}};
const Named<Mousse::Refresh> kRefreshes[] = {{"eigh", Mousse::Refresh::eigh},
                                             {"power_qr", Mousse::Refresh::power_qr}};
}  // namespace

Mousse::Mousse(const ConfigNode& node) {
  momentum = node.number("momentum", momentum, NumRange::right_open(0, 1));
  nesterov = node.boolean("nesterov", nesterov);
  beta_pc = node.number("beta_pc", beta_pc, NumRange::right_open(0, 1));
  eps = node.number("eps", eps, NumRange::above(0));
  alpha = node.number("alpha", alpha, NumRange::closed(0, 1));
  update_interval = node.integer("update_interval", update_interval, {1, kMaxCount});
  whiten = node.choice("whiten", Side::both, kSides);
  trace_normalize = node.boolean("trace_normalize", trace_normalize);
  pc_bias_correction = node.boolean("pc_bias_correction", pc_bias_correction);
  grafting = node.boolean("grafting", grafting);
  whiten_dtype = node.choice("whiten_dtype", OrthoDtype::automatic, kOrthoDtypes);
  stats_dtype = parse_stats_precision(node);
  refresh_method = node.choice("refresh", Refresh::eigh, kRefreshes);
  eigh_every = node.integer("eigh_every", eigh_every, {0, kMaxCount});  // 0: only the first
  // 0: synchronous refreshes; at most update_interval steps late.
  refresh_overlap = node.integer("refresh_overlap", refresh_overlap, {0, update_interval});
  qr = parse_qr_method(node);
  ortho_ = Orthogonalizer(parse_ortho_options(node));
  scale = parse_update_scale(node);
  weight_decay = node.number("weight_decay", weight_decay, NumRange::at_least(0));
  if (refresh_overlap > 0 && refresh_method != Refresh::eigh)
    node.error("refresh_overlap", "only applies with \"refresh\": \"eigh\" (the power_qr "
                                  "refresh is synchronous)");
  for (const char* key : {"eigh_every", "qr"})
    if (refresh_method == Refresh::eigh && node.has(key))
      node.error(key, "only applies with \"refresh\": \"power_qr\"");
}

std::string Mousse::describe() const {
  char refresh[64] = "eigh";
  if (refresh_method == Refresh::power_qr)
    std::snprintf(refresh, sizeof refresh, "power_qr eigh_every=%lld qr=%s",
                  (long long)eigh_every, qr_method_name(qr));
  else if (refresh_overlap > 0)
    std::snprintf(refresh, sizeof refresh, "eigh refresh_overlap=%lld",
                  (long long)refresh_overlap);
  char buf[640];
  std::snprintf(buf, sizeof buf,
                "mousse momentum=%g nesterov=%s beta_pc=%g eps=%g alpha=%g update_interval=%lld "
                "refresh=%s whiten=%s whiten_dtype=%s stats_dtype=%s trace_normalize=%s "
                "pc_bias_correction=%s grafting=%s orthogonalizer=%s update_scale=%s "
                "weight_decay=%g",
                momentum, nesterov ? "true" : "false", beta_pc, eps, alpha,
                (long long)update_interval, refresh, choice_name(kSides, whiten),
                choice_name(kOrthoDtypes, whiten_dtype),
                stats_precision_describe(stats_dtype, stats_).c_str(),
                trace_normalize ? "true" : "false",
                pc_bias_correction ? "true" : "false", grafting ? "true" : "false",
                ortho_.options().describe().c_str(), update_scale_name(scale), weight_decay);
  return buf;
}

void Mousse::reserve_state(Arena& arena, const std::vector<Param*>& params) {
  st_.clear();
  st_.resize(params.size());
  const bool q16 = whiten_dtype == OrthoDtype::bf16 ||
                   (whiten_dtype == OrthoDtype::automatic && arena.device() == Device::cuda);
  MOUSSE_CHECK(!q16 || arena.device() == Device::cuda,
               "mousse: whiten_dtype 'bf16' needs the CUDA backend (the CPU computes in f32/f64)");
  const DType dt = params.empty() ? DType::f32 : params[0]->weight.dtype;
  stats_ = resolve_stats_precision(stats_dtype, arena.device(), dt, "mousse");
  const bool g16 = stats_ == StatsPrecision::bf16;
  const DType qdt = q16 ? DType::bf16 : dt;
  for (size_t i = 0; i < params.size(); i++) {
    const Param& p = *params[i];
    MOUSSE_CHECK(p.weight.shape.ndim == 2, "mousse: ", p.name, " is not a matrix");
    MOUSSE_CHECK(p.weight.dtype == dt, "mousse: ", p.name, " is ", dtype_name(p.weight.dtype),
                 ", the other matrices ", dtype_name(dt));
    st_[i].name = p.name;
  }
  groups_ = group_by_shape(params);
  // The state of one shape group is planned as stacks (momenta, bases, scalings: one
  // contiguous [batch, ...] tensor each, every matrix's slice keeping its own name), so that the
  // whitening GEMMs and the scalings run once per group, not once per matrix.
  int64_t max_d = 0, max_stack = 0, max_batch = 0;
  for (const ShapeGroup& grp : groups_) {
    const int64_t m = grp.rows, n = grp.cols, b = int64_t(grp.index.size());
    bool use_out = whiten == Side::both || whiten == Side::output,
         use_in = whiten == Side::both || whiten == Side::input;
    if (whiten == Side::smaller) {
      use_out = m <= n;
      use_in = !use_out;
    }
    auto stack = [&](auto member, const std::string& prefix, DType type, Shape shape) {
      std::vector<Tensor*> ts;
      std::vector<std::string> names;
      for (size_t i : grp.index) {
        ts.push_back(&member(st_[i]));
        names.push_back(prefix + st_[i].name);
      }
      arena.reserve_stack(ts, "optimizer", names, type, shape);
    };
    stack([](State& s) -> Tensor& { return s.m; }, "mousse.m.", dt, Shape{m, n});
    auto plan = [&](Factor State::*side, bool on, int64_t d, const char* tag) {
      for (size_t i : grp.index) {
        Factor& f = st_[i].*side;
        f.on = on;
        f.dim = d;
        if (on)
          arena.reserve(f.stat, "optimizer", std::string("mousse.") + tag + "." + st_[i].name, dt,
                        Shape{d, d});
      }
      if (!on) return;
      stack([&](State& s) -> Tensor& { return (s.*side).basis; },
            std::string("mousse.Q") + tag + ".", qdt, Shape{d, d});
      stack([&](State& s) -> Tensor& { return (s.*side).scaling; },
            std::string("mousse.s") + tag + ".", dt, Shape{d});
      max_d = std::max(max_d, d);
    };
    plan(&State::out, use_out, m, "L");
    plan(&State::in, use_in, n, "R");
    ortho_.plan(b, m, n);
    max_stack = std::max(max_stack, b * m * n);
    max_batch = std::max(max_batch, b);
  }
  if (max_stack == 0) return;
  const std::string c = "optimizer_scratch";
  arena.reserve(stack_, c, "mousse.stack", dt, Shape{max_stack});
  arena.reserve(gamma_ssq_, c, "mousse.gamma_sum_squares", dt, Shape{max_batch});
  arena.reserve(u_ssq_, c, "mousse.update_sum_squares", dt, Shape{max_batch});
  arena.reserve(tr_, c, "mousse.trace", dt, Shape{1});
  if (q16 || g16) arena.reserve(cur16_, c, "mousse.bf16_copy", DType::bf16, Shape{max_stack});
  arena.reserve(s1_, c, "mousse.scratch1", dt, Shape{max_stack});
  arena.reserve(s2_, c, "mousse.scratch2", dt, Shape{max_stack});
  if (max_d > 0) {
    arena.reserve(sq1_, c, "mousse.scratch_sq1", dt, Shape{max_d * max_d});
    arena.reserve(sq2_, c, "mousse.scratch_sq2", dt, Shape{max_d * max_d});
    arena.reserve(lam_, c, "mousse.scratch_eigenvalues", dt, Shape{max_d});
    // Batched refresh: factors of one size are refreshed 16 MiB at a time (at least one of the
    // largest; refresh_stack_capacity).
    const RefreshStackSize stack = refresh_stack_size(sized_factors(), dtype_size(dt));
    arena.reserve(eig_a_, c, "mousse.eigh_batch_a", dt, Shape{stack.matrix_elems});
    arena.reserve(eig_v_, c, "mousse.eigh_batch_vectors", dt, Shape{stack.matrix_elems});
    arena.reserve(eig_w_, c, "mousse.eigh_batch_values", dt, Shape{stack.vector_elems});
    if (refresh_method == Refresh::power_qr)
      power_.reserve(arena, c, "mousse", dt, stack.matrix_elems, stack.vector_elems, qr);
  }
  pending_slots_.clear();
  pending_stacks_.clear();
  if (refresh_overlap > 0 && max_d > 0) {  // every factor, in refresh_all's stacks
    std::map<const Factor*, std::pair<std::string, const char*>> owner;  // matrix, side
    for (const State& st : st_) {
      owner[&st.out] = {st.name, "L"};
      owner[&st.in] = {st.name, "R"};
    }
    int64_t mat = 0;
    for_each_refresh_stack(sized_factors(), dtype_size(dt),
                           [&](int64_t d, const std::vector<Factor*>& fs) {
                             pending_stacks_.push_back({pending_slots_.size(), fs.size(), d});
                             for (Factor* f : fs) {
                               const auto& [matrix, side] = owner.at(f);
                               pending_slots_.push_back({f, matrix, side, d, mat, {}, {}});
                               mat += d * d;
                             }
                           });
    // The worker reads the inputs while the next steps run: memory of its own, not overlaid.
    arena.reserve(pend_a_, "optimizer_refresh", "mousse.refresh_input", dt, Shape{mat});
    for (const PendingStack& ps : pending_stacks_) {  // (pending_slots_ no longer grows)
      std::vector<Tensor*> vs, ws;
      std::vector<std::string> vnames, wnames;
      for (size_t i = ps.first; i < ps.first + ps.count; i++) {
        PendingSlot& slot = pending_slots_[i];
        vs.push_back(&slot.v);
        ws.push_back(&slot.w);
        vnames.push_back(std::string("mousse.pending_Q") + slot.side + "." + slot.matrix);
        wnames.push_back(std::string("mousse.pending_lambda") + slot.side + "." + slot.matrix);
      }
      arena.reserve_stack(vs, "optimizer", vnames, dt, Shape{ps.d, ps.d});
      arena.reserve_stack(ws, "optimizer", wnames, dt, Shape{ps.d});
    }
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

template <class F>
void Mousse::timed(Ops& ops, F&& f) {
  ops.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  ops.synchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  refresh_seconds_total_ += secs;
  refresh_seconds_window_ += secs;
}

// f's basis (=) q and its scalings (=) max(λ, ε)^(−α); host_lam (the same λ) for the condition.
void Mousse::set_basis(Ops& ops, Factor& f, const Tensor& q, const Tensor& lam,
                       const std::vector<double>& host_lam) {
  ops.copy(f.basis, q);
  ops.pow_clamped(f.scaling, lam, -alpha, eps);
  const double lmin = std::max(*std::min_element(host_lam.begin(), host_lam.end()), eps);
  const double lmax = std::max(*std::max_element(host_lam.begin(), host_lam.end()), eps);
  f.cond = lmax / lmin;
}

void Mousse::refresh(Ops& ops, Factor& f) {
  const int64_t d = f.dim;
  Tensor a = scratch_view(sq1_, Shape{d, d}), v = scratch_view(sq2_, Shape{d, d});
  Tensor lam = scratch_view(lam_, Shape{d});
  timed(ops, [&] {
    damped_factor(ops, a, f);
    const int rc = ops.eigh(v, lam, a);
    const std::vector<double> l = read_vector(ops, lam);
    if (rc == 0 && all_finite(l)) set_basis(ops, f, v, lam, l);
    else failures_++;  // keep the previous basis and scalings
  });
}

std::vector<std::pair<int64_t, Mousse::Factor*>> Mousse::sized_factors() {
  std::vector<std::pair<int64_t, Factor*>> out;
  for (State& st : st_)
    for (Factor* f : {&st.out, &st.in})
      if (f->on) out.push_back({f->dim, f});
  return out;
}

// All factors at once: per size, stacks of trace-normalised, damped factors go through ONE
// ops.eigh_batched (one synchronisation per stack instead of several per factor). A factor
// whose batched decomposition fails is redone alone by refresh() (f32, then the f64 retry);
// only a failure there counts.
void Mousse::refresh_all(Ops& ops) {
  const size_t esz = dtype_size(eig_a_.dtype);
  for_each_refresh_stack(sized_factors(), esz, [&](int64_t d, const std::vector<Factor*>& fs) {
    const int64_t b = int64_t(fs.size());
    const Tensor A = eig_a_.slice(0, Shape{b, d, d}), V = eig_v_.slice(0, Shape{b, d, d});
    const Tensor W = eig_w_.slice(0, Shape{b, d});
    std::vector<int> status;
    timed(ops, [&] {
      for (int64_t k = 0; k < b; k++)
        damped_factor(ops, A.slice(k * d * d, Shape{d, d}), *fs[size_t(k)]);
      status = ops.eigh_batched(V, W, A);
      const std::vector<double> lam = read_vector(ops, W);
      for (int64_t k = 0; k < b; k++)
        if (status[size_t(k)] == 0)
          set_basis(ops, *fs[size_t(k)], V.slice(k * d * d, Shape{d, d}), W.slice(k * d, Shape{d}),
                    std::vector<double>(lam.begin() + k * d, lam.begin() + (k + 1) * d));
    });
    for (int64_t k = 0; k < b; k++)
      if (status[size_t(k)] != 0) refresh(ops, *fs[size_t(k)]);
  });
}

// One warm-started subspace-iteration step for all factors, batched by size like refresh_all:
// per stack, the damped factors and f32 copies of the bases (which may be stored in bf16) go
// through one power_qr_step; then each new basis's Rayleigh quotients are its eigenvalues. A
// non-finite result falls back to the exact refresh(), which decides whether it counts as a
// failure.
void Mousse::refresh_power_all(Ops& ops) {
  const size_t esz = dtype_size(eig_a_.dtype);
  for_each_refresh_stack(sized_factors(), esz, [&](int64_t d, const std::vector<Factor*>& fs) {
    const int64_t b = int64_t(fs.size());
    const Tensor A = eig_a_.slice(0, Shape{b, d, d}), Q = eig_v_.slice(0, Shape{b, d, d});
    const Tensor lam = eig_w_.slice(0, Shape{b * d}), P = power_.p.slice(0, Shape{b, d, d});
    std::vector<Factor*> redo;
    timed(ops, [&] {
      for (int64_t k = 0; k < b; k++) {
        damped_factor(ops, A.slice(k * d * d, Shape{d, d}), *fs[size_t(k)]);
        ops.copy(Q.slice(k * d * d, Shape{d, d}), fs[size_t(k)]->basis);
      }
      cholesky_qr_failures_ += power_qr_step(ops, Q, A, power_).householder_fallbacks;
      ops.matmul_batched(P, A, false, Q, false);
      for (int64_t k = 0; k < b; k++)  // λ_j = q_jᵀ (L̃ + εI) q_j
        ops.column_dots(lam.slice(k * d, Shape{d}), Q.slice(k * d * d, Shape{d, d}),
                        P.slice(k * d * d, Shape{d, d}));
      const std::vector<double> l = read_vector(ops, lam);
      for (int64_t k = 0; k < b; k++) {
        const std::vector<double> lk(l.begin() + k * d, l.begin() + (k + 1) * d);
        if (all_finite(lk))
          set_basis(ops, *fs[size_t(k)], Q.slice(k * d * d, Shape{d, d}),
                    lam.slice(k * d, Shape{d}), lk);
        else
          redo.push_back(fs[size_t(k)]);
      }
    });
    for (Factor* f : redo) refresh(ops, *f);
  });
}

// The damped factors of this step into the refresh inputs (on this thread's stream, then
// synchronised), then the worker decomposes them stack by stack on its own backend while the
// caller goes on. Only the preparation is booked as refresh time here.
void Mousse::start_overlapped_refresh(Ops& ops) {
  MOUSSE_CHECK(pending_apply_at_ < 0, "mousse: an overlapped refresh is still pending");
  timed(ops, [&] {
    for (const PendingSlot& s : pending_slots_)
      damped_factor(ops, pend_a_.slice(s.mat, Shape{s.d, s.d}), *s.f);
  });  // (timed() synchronises: the inputs are complete before the worker reads them)
  refresh_worker_.start(pending_stack_list());
  pending_apply_at_ = t_ + refresh_overlap;
}

// The pending refresh's bases and scalings replace the current ones, factor by factor; a factor
// whose decomposition failed keeps its basis and counts as a failure (no f64 retry here: its
// input is gone). The wait for the worker, if it is not done yet, is booked as refresh time.
void Mousse::apply_pending_refresh(Ops& ops) {
  timed(ops, [&] {
    const RefreshWorker::Result& r = refresh_worker_.result();
    for (const PendingStack& st : pending_stacks_) {
      const std::vector<double> lam = read_vector(ops, pending_stack(st).w);
      for (size_t k = 0; k < st.count; k++) {
        const size_t i = st.first + k;
        const PendingSlot& s = pending_slots_[i];
        const std::vector<double> l(lam.begin() + int64_t(k) * s.d,
                                    lam.begin() + int64_t(k + 1) * s.d);
        if (r.status[i] == 0 && all_finite(l)) set_basis(ops, *s.f, s.v, s.w, l);
        else failures_++;
      }
    }
    overlapped_seconds_total_ += r.seconds;
  });
  pending_apply_at_ = -1;
  refresh_worker_.reset();
}

RefreshWorker::Stack Mousse::pending_stack(const PendingStack& st) const {
  const PendingSlot& first = pending_slots_[st.first];
  const int64_t b = int64_t(st.count), d = st.d;
  std::vector<const Tensor*> vs, ws;
  for (size_t i = st.first; i < st.first + st.count; i++) {
    vs.push_back(&pending_slots_[i].v);
    ws.push_back(&pending_slots_[i].w);
  }
  return {stack_view(vs), stack_view(ws), pend_a_.slice(first.mat, Shape{b, d, d})};
}

std::vector<RefreshWorker::Stack> Mousse::pending_stack_list() const {
  std::vector<RefreshWorker::Stack> out;
  for (const PendingStack& st : pending_stacks_) out.push_back(pending_stack(st));
  return out;
}

// out (=) op(q) · x (q_left) or x · op(q), for a stack: q [b, d, d] the bases (f32, or bf16 with
// whiten_dtype bf16), x and out [b, m, n] in the parameter dtype. A bf16 basis multiplies a bf16
// copy of x (f32 accumulate).
void Mousse::basis_gemm(Ops& ops, const Tensor& out, const Tensor& q, bool trans_q,
                        const Tensor& x, bool q_left) {
  Tensor xx = x;
  if (q.dtype != x.dtype) {
    xx = cur16_.slice(0, x.shape);
    ops.copy(xx, x);
  }
  if (q_left) ops.matmul_batched(out, q, trans_q, xx, false);
  else ops.matmul_batched(out, xx, false, q, trans_q);
}

// The [batch, ...] view of one state tensor of a group's matrices (planned as one stack).
template <class Get>
Tensor Mousse::group_stack(const ShapeGroup& grp, Get&& get) const {
  std::vector<const Tensor*> ts;
  for (size_t i : grp.index) ts.push_back(&get(st_[i]));
  return stack_view(ts);
}

void Mousse::step(Ops& ops, const std::vector<Param*>& params, const OptimStep& s) {
  MOUSSE_CHECK(params.size() == st_.size(), "Mousse: params changed since reserve_state");
  const bool do_refresh = t_ % update_interval == 0;
  RmsAccumulator rms;
  json precond = json::object();
  // The step comments carry Algorithm 1's line numbers. Its line 1 (momentum) runs below, per
  // shape group, after lines 2–6: neither depends on the other, and per group the momentum
  // lands straight in the group's stack.
  // Line 2. curvature statistics of every matrix: F ← β_pc F + (1 − β_pc) g gᵀ
  //    (g = grad_scale·G)
  const double w = (1.0 - beta_pc) * s.grad_scale * s.grad_scale;
  for (size_t i = 0; i < params.size(); i++) {
    const Param& p = *params[i];
    State& st = st_[i];
    update_statistics(ops, st.out.on ? st.out.stat : Tensor{}, st.in.on ? st.in.stat : Tensor{},
                      p.grad, w, beta_pc, stats_, cur16_);
    if (t_ == 0)  // a failed first eigh then leaves the identity basis (plain Muon)
      for (Factor* f : {&st.out, &st.in}) {
        if (!f->on) continue;
        ops.fill(f->basis, 0.0);
        ops.add_to_diagonal(f->basis, 1.0);
        ops.fill(f->scaling, 1.0);
      }
  }
  // Lines 3–6. spectral decompositions every T steps (the first included), from this step's
  //    statistics: trace normalisation, eigh, tempering s = λ^(−α) (refresh_all, set_basis);
  //    overlapped: a refresh started refresh_overlap steps ago takes effect first
  if (pending_apply_at_ == t_) apply_pending_refresh(ops);
  if (do_refresh) {
    // The worker is made at the first refresh (or the first after a resume), while nothing runs
    if (refresh_overlap > 0 && !refresh_worker_.made())
      refresh_worker_.make(ops, pending_stack_list());
    const int64_t k = t_ / update_interval;  // refreshes before this one
    const bool exact = refresh_method == Refresh::eigh || k == 0 ||
                       (eigh_every > 0 && k % eigh_every == 0);
    if (refresh_overlap > 0 && k > 0) start_overlapped_refresh(ops);
    else if (exact) refresh_all(ops);
    else refresh_power_all(ops);
  }

  // Per shape group, on [batch, m, n] stacks: every GEMM and scaling below runs once per group.
  for (const ShapeGroup& grp : groups_) {
    const int64_t batch = int64_t(grp.index.size()), m = grp.rows, n = grp.cols;
    const Shape sh{batch, m, n};
    const Tensor X1 = s1_.slice(0, sh), X2 = s2_.slice(0, sh), stack = stack_.slice(0, sh);
    auto other = [&](const Tensor& t) { return t.data == X1.data ? X2 : X1; };
    const State& first = st_[grp.index[0]];
    const bool out_on = first.out.on, in_on = first.in.on;
    // one side's bases or scalings of the group as a stack (undefined when the side is off)
    auto factor_stack = [&](Factor State::*side, Tensor Factor::*t) {
      if (!(first.*side).on) return Tensor{};
      return group_stack(grp, [&](const State& x) -> const Tensor& { return (x.*side).*t; });
    };
    const Tensor QL = factor_stack(&State::out, &Factor::basis),
                 SL = factor_stack(&State::out, &Factor::scaling),
                 QR = factor_stack(&State::in, &Factor::basis),
                 SR = factor_stack(&State::in, &Factor::scaling);

    // Line 1. momentum per matrix, into the group's momentum stack (Nesterov: the look-ahead into X1)
    for (int64_t j = 0; j < batch; j++) {
      const size_t i = grp.index[size_t(j)];
      momentum_update(ops, st_[i].m, params[i]->grad, momentum, nesterov, s.grad_scale,
                      X1.slice(j * m * n, Shape{m, n}));
    }
    Tensor cur = nesterov ? X1 : group_stack(grp, [](const State& x) -> const Tensor& { return x.m; });

    // Lines 7–8. whiten: M̃ = diag(s_L) Q_Lᵀ M Q_R diag(s_R), the last product landing in the stack
    if (out_on) {
      const Tensor d = in_on ? other(cur) : stack;
      basis_gemm(ops, d, QL, true, cur, true);
      cur = d;
    }
    if (in_on) {
      basis_gemm(ops, stack, QR, false, cur, false);
      cur = stack;
    }
    if (cur.data != stack.data) ops.copy(stack, cur);
    ops.scale_rows_cols(stack, stack, SL, SR);

    // Lines 9–10. orthogonalise the whole group in the whitened frame; γ_j = ‖M̄_j‖_F²
    ortho_.run(ops, stack, stack);
    const Tensor gssq = gamma_ssq_.slice(0, Shape{batch});
    if (grafting) ops.sum_squares_batched(gssq, stack);

    // Lines 11–12. un-whiten with the same −α power: U = Q_L diag(s_L) M̄ diag(s_R) Q_Rᵀ
    cur = stack;
    ops.scale_rows_cols(cur, cur, SL, SR);
    if (out_on) {
      basis_gemm(ops, X1, QL, false, cur, true);
      cur = X1;
    }
    if (in_on) {
      const Tensor d = other(cur);
      basis_gemm(ops, d, QR, true, cur, false);
      cur = d;
    }
    // Line 13. grafting: Muon's magnitude γ_j in the original frame (U_j kept when ‖U_j‖ = 0
    //    or not finite)
    if (grafting) {
      const Tensor ussq = u_ssq_.slice(0, Shape{batch});
      ops.sum_squares_batched(ussq, cur);
      ops.scale_by_ratio(cur, gssq, ussq, 0.5, 1.0, 1.0, 0.0);
    }

    // Line 14. per matrix: W ← W(1 − lr·wd) − lr·scale·U
    const double sc = update_scale(scale, m, n);
    for (int64_t j = 0; j < batch; j++) {
      Param& p = *params[grp.index[size_t(j)]];
      const State& st = st_[grp.index[size_t(j)]];
      const Tensor u = cur.slice(j * m * n, Shape{m, n});
      if (s.diagnostics) {  // host values on logging steps only
        rms.add(sc * sc * ops.sum_squares(u), u.numel());
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
      apply_matrix_update(ops, p.weight, u, s.lr, weight_decay, sc);
    }
  }
  t_++;
  if (s.diagnostics) {
    diag_ = rms.to_json();
    diag_["refresh_seconds"] = refresh_seconds_window_;
    diag_["refresh_seconds_total"] = refresh_seconds_total_;
    diag_["eigh_failures"] = failures_;
    // power_qr steps whose Cholesky QR failed and were redone with Householder QR (slower, not
    // wrong); always 0 with the eigh refresh
    diag_["cholesky_qr_failures"] = cholesky_qr_failures_;
    // refresh_overlap: the worker's time (beside the steps; refresh_seconds holds what the
    // steps themselves spent on preparing and applying)
    if (refresh_overlap > 0) diag_["refresh_overlapped_seconds_total"] = overlapped_seconds_total_;
    diag_["precond"] = precond;
    refresh_seconds_window_ = 0.0;
  }
}

json Mousse::save_extra() const {
  json cond = json::object();
  for (auto& s : st_) cond[s.name] = {s.out.cond, s.in.cond};
  json j = {{"t", t_},
            {"eigh_failures", failures_},
            {"cholesky_qr_failures", cholesky_qr_failures_},
            {"refresh_seconds_total", refresh_seconds_total_},
            {"cond", cond}};
  if (refresh_overlap > 0) j["refresh_overlapped_seconds_total"] = overlapped_seconds_total_;
  if (pending_apply_at_ >= 0) {  // its results are state tensors; finish them before they are saved
    const RefreshWorker::Result& r = refresh_worker_.result();
    json status = json::object();  // per matrix and side, so that any rank can take it over
    for (size_t i = 0; i < pending_slots_.size(); i++)
      status[pending_slots_[i].matrix][pending_slots_[i].side] = r.status[i];
    j["pending_refresh"] = {{"apply_at", pending_apply_at_}, {"status", status},
                            {"seconds", r.seconds}};
  }
  return j;
}

void Mousse::load_extra(const json& j) {
  t_ = j.value("t", int64_t(0));
  failures_ = j.value("eigh_failures", int64_t(0));
  cholesky_qr_failures_ = j.value("cholesky_qr_failures", int64_t(0));
  refresh_seconds_total_ = j.value("refresh_seconds_total", 0.0);
  refresh_seconds_window_ = 0.0;
  overlapped_seconds_total_ = j.value("refresh_overlapped_seconds_total", 0.0);
  refresh_worker_.reset();
  pending_apply_at_ = -1;
  if (j.contains("pending_refresh")) {  // its eigenvectors and eigenvalues came with the state
    const json& p = j["pending_refresh"];
    MOUSSE_CHECK(refresh_overlap > 0, "mousse: the checkpoint has a pending overlapped refresh, ",
                 "but this run's refresh_overlap is 0; resume with the config it was made with");
    const json& status = p.at("status");
    MOUSSE_CHECK(status.is_object(), "mousse: the checkpoint's pending overlapped refresh was ",
                 "saved by an earlier version (per rank, not per matrix); resume it with that ",
                 "version");
    RefreshWorker::Result r;
    r.seconds = p.value("seconds", 0.0);
    for (const PendingSlot& s : pending_slots_) {
      MOUSSE_CHECK(status.contains(s.matrix) && status[s.matrix].contains(s.side),
                   "mousse: the checkpoint's pending refresh has no result for side ", s.side,
                   " of ", s.matrix, "; resume with the config it was made with");
      r.status.push_back(status[s.matrix][s.side].get<int>());
    }
    pending_apply_at_ = p.at("apply_at").get<int64_t>();
    refresh_worker_.restore(std::move(r));
  }
  if (j.contains("cond"))
    for (auto& s : st_)
      if (j["cond"].contains(s.name)) {
        s.out.cond = j["cond"][s.name].at(0).get<double>();  // (at: a corrupt pair throws)
        s.in.cond = j["cond"][s.name].at(1).get<double>();
      }
}

// Every rank steps every step, so the step counter and the pending refresh's effective step are
// alike on all of them; what is per matrix (condition numbers, pending results' status) is keyed
// by the matrix's name and merged; counts go to rank 0 alone (the ranks' diagnostics are summed)
// and times are the slowest rank's (they are merged by max).
json Mousse::merge_extra(const std::vector<json>& saved, int rank) const {
  if (saved.empty()) return json::object();
  json out = saved[0];
  sum_refresh_failures_to_rank0(saved, rank, out);
  for (const char* key : {"refresh_seconds_total", "refresh_overlapped_seconds_total"}) {
    double mx = 0.0;
    for (const json& s : saved) mx = std::max(mx, s.value(key, 0.0));
    if (out.contains(key)) out[key] = mx;
  }
  json cond = json::object();
  for (const json& s : saved) {
    MOUSSE_CHECK(s.value("t", int64_t(-1)) == out.value("t", int64_t(-1)),
                 "mousse: the ranks of the checkpoint saved different step counts (",
                 s.value("t", int64_t(-1)), " and ", out.value("t", int64_t(-1)), ")");
    if (s.contains("cond")) cond.update(s["cond"]);
  }
  out["cond"] = cond;
  const bool pending = std::any_of(saved.begin(), saved.end(),
                                  [](const json& s) { return s.contains("pending_refresh"); });
  if (pending) {
    json& p = out["pending_refresh"];
    json status = json::object();
    for (const json& s : saved) {
      MOUSSE_CHECK(p.is_object() && s.contains("pending_refresh") &&
                       s["pending_refresh"].value("apply_at", int64_t(-1)) ==
                           p.value("apply_at", int64_t(-1)),
                   "mousse: the ranks of the checkpoint disagree on the pending overlapped refresh");
      const json& st = s["pending_refresh"]["status"];
      if (st.is_object()) status.update(st);
      else status = st;  // an earlier version's per-rank list: load_extra names it
      p["seconds"] = std::max(p.value("seconds", 0.0), s["pending_refresh"].value("seconds", 0.0));
    }
    p["status"] = status;
  }
  return out;
}

}  // namespace mousse
