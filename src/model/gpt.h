#pragma once
// The GPT (docs/architecture.md, "The model"), written once against the Ops interface: the forward and backward
// passes are a plain sequence of layer calls. All activations for one micro-batch of B×T
// tokens are planned in the arena up front (category "activations").
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/arena.h"
#include "model/params.h"

namespace mousse {

// Activation recomputation: activations that backward recomputes instead of keeping one copy
// per layer. Results are identical either way (the recomputation repeats the same op on the same
// inputs); only the activation memory and some extra work change.
struct Recompute {
  bool mlp = false;    // relu²(fc_pre): one shared [N, 4C] buffer instead of one per layer
  bool norms = false;  // ln1, ln2 = rmsnorm(x): one shared [N, C] buffer instead of 2 per layer
  // "none" | "mlp" | "norms" | "all"; throws naming the choices otherwise.
  static Recompute parse(const std::string& mode);
  std::string str() const;
};

class GPT {
 public:
  // Plans parameters, gradients and activations for micro-batches of B sequences of T tokens.
  GPT(const ModelConfig& cfg, Precision prec, int64_t B, int64_t T, Arena& arena,
      Recompute recompute = {});
  GPT(const GPT&) = delete;
  GPT& operator=(const GPT&) = delete;

  // After arena.allocate().
  void bind();
  // Spectral init (docs/architecture.md) from a host RNG: identical weights on every backend and rank.
  void init_weights(Ops& ops, uint64_t seed);

  // Inputs of the next micro-batch, i32 [B, T] on the device; fill with ops.from_host.
  const Tensor& inputs() const { return tokens_; }
  const Tensor& targets() const { return targets_; }

  // Forward over inputs/targets. With compute_grad, the logits are replaced by the gradient of
  // grad_scale × sum(losses), ready for backward(). Per-position losses are added into
  // loss_accumulator() (read it once per step with ops.sum and reset with ops.fill).
  void forward(Ops& ops, bool compute_grad, double grad_scale);
  // Accumulates (+=) parameter gradients of the last forward(compute_grad = true).
  void backward(Ops& ops);
  // Optional (data parallelism): called during backward() as soon as gradients of a stage are
  // final for this micro-batch, so their reduction can overlap the rest of the backward pass:
  // stage n_layer after lm_head, then l after block l (n_layer−1 … 0); wte is last of all.
  std::function<void(int stage)> on_grads_ready;
  void zero_grads(Ops& ops);
  // Refreshes the working copy of the weights (bf16 on CUDA) from the master weights.
  void sync_compute_weights(Ops& ops, uint64_t seed);

  const Tensor& loss_accumulator() const { return loss_sum_; }
  const Tensor& logits() const { return logits_; }
  ParamTable& params() { return params_; }
  const ModelConfig& config() const { return cfg_; }
  Precision precision() const { return prec_; }
  int64_t batch_size() const { return B_; }
  int64_t seq_len() const { return T_; }
  const Recompute& recompute() const { return recompute_; }

 private:
  struct Layer {
    Param *q, *k, *v, *o, *fc, *proj;
    Tensor ln1, rstd1;      // rmsnorm(x_in), its 1/rms
    Tensor qkv_raw, qkv;    // projections; after QK-Norm + RoPE
    Tensor qk_rstd;         // QK-Norm 1/rms per head
    Tensor att, lse;        // attention output (heads concatenated), log-sum-exp per row
    Tensor x_mid;           // residual after the attention block
    Tensor ln2, rstd2;
    Tensor fc_pre, fc_act;  // MLP pre-activation and relu²
  };
  Tensor qkv_weight(const Layer& l, bool compute) const;  // q, k, v as one [3C, C] matrix

  ModelConfig cfg_;
  Precision prec_;
  int64_t B_, T_;
  Recompute recompute_;
  ParamTable params_;
  Param *wte_, *lm_head_;
  std::vector<Layer> layers_;
  std::vector<Tensor> x_;  // residual stream entering layer l; x_[L] enters the final norm
  Tensor tokens_, targets_;
  Tensor lnf_, rstdf_, logits_, losses_, loss_sum_;
  // Scratch reused by every layer.
  Tensor delta_;                         // block output before the residual add
  Tensor dx_, dln_, datt_, dqkv_, dqkv_raw_, dact_, dfc_;
  // Shared buffers of the recomputed activations (see Recompute) and the rstd scratch their
  // recomputation writes (the saved rstd stays untouched).
  Tensor shared_ln_, shared_fc_act_, rstd_scratch_;
};

}  // namespace mousse
