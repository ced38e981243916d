#include "model/gpt.h"

#include <cmath>
#include <random>

namespace mousse {

Recompute Recompute::parse(const std::string& mode) {
  Recompute r;
  if (mode == "none") return r;
  if (mode == "mlp") { r.mlp = true; return r; }
  if (mode == "norms") { r.norms = true; return r; }
  if (mode == "all") { r.mlp = r.norms = true; return r; }
  fail("unknown recompute mode '", mode, "': expected none, mlp, norms or all");
}

std::string Recompute::str() const {
  return mlp && norms ? "all" : mlp ? "mlp" : norms ? "norms" : "none";
}

GPT::GPT(const ModelConfig& cfg, Precision prec, int64_t B, int64_t T, Arena& arena,
         Recompute recompute)
    : cfg_(cfg), prec_(prec), B_(B), T_(T), recompute_(recompute), params_(cfg, prec, arena) {
  if (T > cfg.max_seq_len)
    fail("sequence length ", T, " exceeds the model's max_seq_len ", cfg.max_seq_len);
  const int64_t N = B * T, C = cfg.d_model, H = cfg.n_head, L = cfg.n_layer;
  const DType act = prec.activation, st = prec.stats();
  auto plan = [&](Tensor& t, const std::string& name, DType dt, Shape s) {
    arena.reserve(t, "activations", name, dt, s);
  };
  plan(tokens_, "tokens", DType::i32, Shape{B, T});
  plan(targets_, "targets", DType::i32, Shape{B, T});
  // Vectors sized before reserving: the arena keeps pointers to these tensors.
  x_.resize(L + 1);
  layers_.resize(L);
  for (int64_t l = 0; l <= L; l++) plan(x_[l], "x." + std::to_string(l), act, Shape{N, C});
  for (int64_t l = 0; l < L; l++) {
    Layer& y = layers_[l];
    std::string p = "blocks." + std::to_string(l) + ".";
    if (!recompute_.norms) plan(y.ln1, p + "ln1", act, Shape{N, C});
    plan(y.rstd1, p + "rstd1", st, Shape{N});
    plan(y.qkv_raw, p + "qkv_raw", act, Shape{B, T, 3 * C});
    plan(y.qkv, p + "qkv", act, Shape{B, T, 3 * C});
    plan(y.qk_rstd, p + "qk_rstd", st, Shape{N, 2 * H});
    plan(y.att, p + "att", act, Shape{B, T, C});
    plan(y.lse, p + "lse", st, Shape{B, H, T});
    plan(y.x_mid, p + "x_mid", act, Shape{N, C});
    if (!recompute_.norms) plan(y.ln2, p + "ln2", act, Shape{N, C});
    plan(y.rstd2, p + "rstd2", st, Shape{N});
    plan(y.fc_pre, p + "fc_pre", act, Shape{N, 4 * C});
    if (!recompute_.mlp) plan(y.fc_act, p + "fc_act", act, Shape{N, 4 * C});
  }
  if (recompute_.norms) {
    plan(shared_ln_, "recompute.ln", act, Shape{N, C});
    plan(rstd_scratch_, "recompute.rstd", st, Shape{N});
  }
  if (recompute_.mlp) plan(shared_fc_act_, "recompute.fc_act", act, Shape{N, 4 * C});
  plan(lnf_, "lnf", act, Shape{N, C});
  plan(rstdf_, "rstdf", st, Shape{N});
  plan(logits_, "logits", act, Shape{N, int64_t(cfg.padded_vocab)});
  plan(losses_, "losses", st, Shape{N});
  plan(loss_sum_, "loss_sum", st, Shape{N});
  plan(delta_, "scratch.delta", act, Shape{N, C});
  plan(dx_, "scratch.dx", act, Shape{N, C});
  plan(dln_, "scratch.dln", act, Shape{N, C});
  plan(datt_, "scratch.datt", act, Shape{B, T, C});
  plan(dqkv_, "scratch.dqkv", act, Shape{B, T, 3 * C});
  plan(dqkv_raw_, "scratch.dqkv_raw", act, Shape{B, T, 3 * C});
  plan(dact_, "scratch.dact", act, Shape{N, 4 * C});
  plan(dfc_, "scratch.dfc", act, Shape{N, 4 * C});
}

void GPT::bind() {
  params_.bind();
  wte_ = &params_.get("wte");
  lm_head_ = &params_.get("lm_head");
  for (int l = 0; l < cfg_.n_layer; l++) {
    std::string p = "blocks." + std::to_string(l) + ".";
    Layer& y = layers_[l];
    // Recomputed activations: every layer's view is the one shared buffer (the arena has
    // patched the shared tensors by now).
    if (recompute_.norms) y.ln1 = y.ln2 = shared_ln_;
    if (recompute_.mlp) y.fc_act = shared_fc_act_;
    y.q = &params_.get(p + "attn.q");
    y.k = &params_.get(p + "attn.k");
    y.v = &params_.get(p + "attn.v");
    y.o = &params_.get(p + "attn.o");
    y.fc = &params_.get(p + "mlp.fc");
    y.proj = &params_.get(p + "mlp.proj");
    MOUSSE_CHECK(y.k->offset == y.q->offset + y.q->weight.numel() &&
                 y.v->offset == y.k->offset + y.k->weight.numel(), "q, k, v must be adjacent");
  }
}

Tensor GPT::qkv_weight(const Layer& y, bool compute) const {
  const Tensor& flat = compute ? params_.flat_compute() : params_.flat_grads();
  return flat.slice(y.q->offset, Shape{3 * int64_t(cfg_.d_model), int64_t(cfg_.d_model)});
}

namespace {
// Standard normal draws from a 64-bit Mersenne Twister via Box–Muller, written out so the
// stream is the same with every standard library (std::normal_distribution is not).
struct NormalStream {
  std::mt19937_64 rng;
  bool have_spare = false;
  double spare = 0;
  explicit NormalStream(uint64_t seed) : rng(seed) {}
  double uniform() { return (double(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double next() {
    if (have_spare) { have_spare = false; return spare; }
    double u1 = uniform(), u2 = uniform();
    double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    spare = r * std::sin(a);
    have_spare = true;
    return r * std::cos(a);
  }
};
}  // namespace

void GPT::init_weights(Ops& ops, uint64_t seed) {
  int index = 0;
  for (Param& p : params_.params()) {
    // One stream per parameter, so adding a parameter does not reshuffle the others.
    NormalStream normal(seed * 1000003ull + uint64_t(index++));
    const double std = p.init_std();
    const int64_t n = p.weight.numel();
    if (p.weight.dtype == DType::f64) {
      std::vector<double> host(n);
      for (auto& v : host) v = std * normal.next();
      ops.from_host(p.weight, host.data());
    } else {
      std::vector<float> host(n);
      for (auto& v : host) v = float(std * normal.next());
      ops.from_host(p.weight, host.data());
    }
  }
  sync_compute_weights(ops, seed);
}

void GPT::sync_compute_weights(Ops& ops, uint64_t seed) {
  if (params_.has_separate_compute_copy())
    ops.copy_stochastic(params_.flat_compute(), params_.flat_weights(), seed);
}

void GPT::zero_grads(Ops& ops) { ops.fill(params_.flat_grads(), 0.0); }

void GPT::forward(Ops& ops, bool compute_grad, double grad_scale) {
  const int H = cfg_.n_head;
  const float rope = float(cfg_.rope_base);
  ops.embedding_forward(x_[0], wte_->compute, tokens_);
  ops.rmsnorm_forward(layers_[0].ln1, layers_[0].rstd1, x_[0]);
  for (int l = 0; l < cfg_.n_layer; l++) {
    Layer& y = layers_[l];
    // attention block: x_mid = x + o(attention(rope(qknorm(qkv(rmsnorm(x))))))
    ops.matmul(y.qkv_raw, y.ln1, false, qkv_weight(y, true), true);
    ops.qknorm_rope_forward(y.qkv, y.qk_rstd, y.qkv_raw, H, rope);
    ops.attention_forward(y.att, y.lse, y.qkv, H);
    ops.matmul(delta_, y.att, false, y.o->compute, true);
    ops.add_rmsnorm_forward(y.x_mid, y.ln2, y.rstd2, x_[l], delta_);
    // MLP block: x_next = x_mid + proj(relu(fc(rmsnorm(x_mid)))²)
    ops.matmul(y.fc_pre, y.ln2, false, y.fc->compute, true);
    ops.relu2_forward(y.fc_act, y.fc_pre);
    ops.matmul(delta_, y.fc_act, false, y.proj->compute, true);
    bool last = l + 1 == cfg_.n_layer;
    ops.add_rmsnorm_forward(x_[l + 1], last ? lnf_ : layers_[l + 1].ln1,
                            last ? rstdf_ : layers_[l + 1].rstd1, y.x_mid, delta_);
  }
  ops.matmul(logits_, lnf_, false, lm_head_->compute, true);
  ops.classifier(losses_, logits_, targets_, cfg_.vocab_size, grad_scale, compute_grad);
  ops.axpby(loss_sum_, 1.0, losses_, 1.0);
}

void GPT::backward(Ops& ops) {
  const int H = cfg_.n_head;
  const float rope = float(cfg_.rope_base);
  const int L = cfg_.n_layer;
  // logits_ now holds dlogits. dx_ is the gradient of the residual stream: every block adds
  // its input gradient into it, since the residual connection passes gradients unchanged.
  ops.matmul(lm_head_->grad, logits_, true, lnf_, false, 1.f, 1.f);
  if (on_grads_ready) on_grads_ready(L);
  ops.matmul(dln_, logits_, false, lm_head_->compute, false);
  ops.fill(dx_, 0.0);
  ops.rmsnorm_backward(dx_, dln_, x_[L], rstdf_);
  for (int l = L - 1; l >= 0; l--) {
    Layer& y = layers_[l];
    // MLP block
    if (recompute_.mlp) ops.relu2_forward(y.fc_act, y.fc_pre);
    if (recompute_.norms) ops.rmsnorm_forward(y.ln2, rstd_scratch_, y.x_mid);
    ops.matmul(y.proj->grad, dx_, true, y.fc_act, false, 1.f, 1.f);
    ops.matmul(dact_, dx_, false, y.proj->compute, false);
    ops.relu2_backward(dfc_, dact_, y.fc_pre);
    ops.matmul(y.fc->grad, dfc_, true, y.ln2, false, 1.f, 1.f);
    ops.matmul(dln_, dfc_, false, y.fc->compute, false);
    ops.rmsnorm_backward(dx_, dln_, y.x_mid, y.rstd2);
    // attention block
    ops.matmul(y.o->grad, dx_, true, y.att, false, 1.f, 1.f);
    ops.matmul(datt_, dx_, false, y.o->compute, false);
    ops.attention_backward(dqkv_, datt_, y.qkv, y.att, y.lse, H);
    ops.qknorm_rope_backward(dqkv_raw_, dqkv_, y.qkv_raw, y.qk_rstd, H, rope);
    if (recompute_.norms) ops.rmsnorm_forward(y.ln1, rstd_scratch_, x_[l]);
    ops.matmul(qkv_weight(y, false), dqkv_raw_, true, y.ln1, false, 1.f, 1.f);
    ops.matmul(dln_, dqkv_raw_, false, qkv_weight(y, true), false);
    ops.rmsnorm_backward(dx_, dln_, x_[l], y.rstd1);
    if (on_grads_ready) on_grads_ready(l);
  }
  ops.embedding_backward(wte_->grad, dx_, tokens_);
}

}  // namespace mousse
