#include "model/model_config.h"

namespace mousse {

int64_t ModelConfig::num_parameters() const {
  int64_t C = d_model;
  int64_t per_block = 4 * C * C + 2 * 4 * C * C;  // q, k, v, o + fc, proj
  return 2 * int64_t(padded_vocab) * C + n_layer * per_block;
}

double ModelConfig::flops_per_token(int T) const {
  // 6 flops per parameter per token for matmuls (fwd 2 + bwd 4), embedding lookup excluded,
  // plus causal attention: QKᵀ and PV, fwd+bwd = 6 * 2 * T * C per layer, halved for causality.
  double C = d_model;
  double matmul_params = double(n_layer) * 12.0 * C * C + double(padded_vocab) * C;
  double attention = double(n_layer) * 6.0 * T * C;
  return 6.0 * matmul_params + attention;
}

void ModelConfig::validate(const std::string& file) const {
  auto bad = [&](const std::string& key, const std::string& msg) {
    fail(file, ": key 'model.", key, "': ", msg);
  };
  // The relations between keys (model_config_from checks each key's own range as it reads it).
  if (d_model % n_head)
    bad("d_model", std::to_string(d_model) + " is not a multiple of n_head = " +
                       std::to_string(n_head));
  if (head_dim() % 2) bad("d_model", "head dim d_model/n_head must be even for RoPE");
  if (padded_vocab < vocab_size)
    bad("padded_vocab", std::to_string(padded_vocab) + " is less than vocab_size = " +
                            std::to_string(vocab_size));
}

ModelConfig model_preset(const std::string& name) {
  ModelConfig m;
  m.preset = name;
  if (name == "tiny") {  // CPU runs and tests: 13.7M parameters, 12.9M of them embeddings
    m.n_layer = 4; m.n_head = 4; m.d_model = 128; m.max_seq_len = 256;
  } else if (name == "162m") {
    m.n_layer = 12; m.n_head = 6; m.d_model = 768;
  } else if (name == "247m") {
    m.n_layer = 24; m.n_head = 6; m.d_model = 768;
  } else if (name == "494m") {
    m.n_layer = 12; m.n_head = 6; m.d_model = 1536;
  } else if (name == "834m") {
    m.n_layer = 24; m.n_head = 6; m.d_model = 1536;
  } else {
    fail("unknown model preset '", name, "': expected one of tiny, 162m, 247m, 494m, 834m ",
         "(or give n_layer, n_head, d_model explicitly with preset 'custom')");
  }
  return m;
}

ModelConfig model_config_from(const ConfigNode& node) {
  std::string preset = node.string("preset", "custom");
  ModelConfig m = preset == "custom" ? ModelConfig{} : model_preset(preset);
  // Each dim fits an int, and together they keep the parameter count (up to
  // 2·2^31·2^20 + 2^16·12·2^40 < 2^60) and the FLOP estimates finite in int64.
  auto dim = [&](const char* key, int& field, int64_t lo, int64_t hi) {
    field = int(node.integer(key, field, {lo, hi}));
  };
  dim("n_layer", m.n_layer, 1, int64_t(1) << 16);
  dim("n_head", m.n_head, 1, int64_t(1) << 16);
  dim("d_model", m.d_model, 2, int64_t(1) << 20);
  dim("vocab_size", m.vocab_size, 2, kMaxInt32);
  dim("padded_vocab", m.padded_vocab, 2, kMaxInt32);
  dim("max_seq_len", m.max_seq_len, 1, int64_t(1) << 24);
  m.rope_base = node.number("rope_base", m.rope_base, NumRange::above(1));
  node.finish();
  m.validate(node.file());
  return m;
}

}  // namespace mousse
