#pragma once
// The GPT (docs/architecture.md, "The model"): dims and presets.
#include <string>

#include "core/json_config.h"

namespace mousse {

struct ModelConfig {
  std::string preset = "custom";
  int n_layer = 12;
  int n_head = 6;
  int d_model = 768;
  int vocab_size = 50257;     // real vocabulary: the loss is over these logits only
  int padded_vocab = 50304;   // rows of wte / lm_head (a multiple of 128 for kernel efficiency)
  int max_seq_len = 1024;
  double rope_base = 10000.0;

  int head_dim() const { return d_model / n_head; }
  int64_t num_parameters() const;  // wte + lm_head (padded) + blocks
  // 6N-style FLOPs per token for forward + backward, attention included (for MFU).
  double flops_per_token(int seq_len) const;
  // The relations between dims (d_model a multiple of n_head, ...); errors name `file`.
  void validate(const std::string& file) const;
};

// "tiny", "162m", "247m", "494m", "834m"; throws naming the known presets otherwise.
ModelConfig model_preset(const std::string& name);
// From the config's "model" object: {"preset": ...} optionally overriding single dims.
ModelConfig model_config_from(const ConfigNode& node);

}  // namespace mousse
