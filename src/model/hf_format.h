#pragma once
// Our GPT (docs/architecture.md, "The model") as a Hugging Face `transformers` model: Qwen3ForCausalLM computes exactly
// the same function with these weights and settings.
//
//   ours                      Qwen3 (model.layers.{i}. prefix inside a block)
//   wte[:vocab]               model.embed_tokens.weight
//   blocks.i.attn.{q,k,v,o}   self_attn.{q,k,v,o}_proj.weight
//   blocks.i.mlp.fc           mlp.gate_proj.weight and mlp.up_proj.weight (the same matrix)
//   blocks.i.mlp.proj         mlp.down_proj.weight
//   lm_head[:vocab]           lm_head.weight (untied)
//   (RMSNorm without gain)    input_layernorm, post_attention_layernorm, self_attn.{q,k}_norm,
//                             model.norm: every weight 1
//
// Qwen3's MLP is down(act(gate x) · up x); with hidden_act "relu" and gate = up = fc it is
// relu(a)·a = relu(a)², our ReLU² MLP. Qwen3 also normalises q and k per head before RoPE
// (rotate-half, +angle, rope_theta = rope_base), scales scores by 1/sqrt(head_dim) and uses
// RMSNorm with eps 1e-6, as we do. The padded vocabulary rows are not exported (they never
// produce a logit) and come back as zeros on import.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/json_config.h"
#include "core/safetensors.h"
#include "model/model_config.h"
#include "model/params.h"

namespace mousse::hf {

constexpr const char* kConfigFile = "config.json";
constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";  // sharded weights
constexpr int kEos = 50256;  // GPT-2's <|endoftext|>: BOS and EOS

// A directory holding config.json and model.safetensors (or a sharded index).
bool is_model_dir(const std::string& path);

// config.json of Qwen3ForCausalLM for `cfg`, its weights stored in `dtype` (f32 or bf16).
json config_json(const ModelConfig& cfg, DType dtype);
// Our dims from a config.json, checking that it describes one of our models (qwen3, relu, no
// biases, untied, full attention, default RoPE, eps 1e-6, kv heads = heads, head_dim =
// hidden/heads, intermediate = 4·hidden); each violation names the key and `file`.
ModelConfig model_config_from_json(const json& j, const std::string& file);

// Canonical weight `spec` as f32 [rows, cols] (padded vocabulary rows included).
using CanonicalReader = std::function<void(const ParamSpec& spec, float* dst)>;
// Writes model.safetensors of `cfg` (every tensor in `dtype`: f32, or bf16 rounded to nearest
// even) atomically to `path`, reading each canonical weight once per tensor it becomes.
void write_weights(const std::string& path, const ModelConfig& cfg, DType dtype,
                   const CanonicalReader& read);

// An exported directory opened for import. The constructor checks everything before any
// weight is used: config.json (as above), the exact tensor set and shapes (biases, a tied or
// missing lm_head, extra or misnamed tensors are errors), every norm weight exactly 1, and
// gate_proj == up_proj bit for bit in every layer. Each error names the file and tensor or key.
class ModelDir {
 public:
  explicit ModelDir(const std::string& dir);
  ~ModelDir();
  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return cfg_; }
  // The canonical tensor `name` in dtype dt into dst of `shape` [rows, cols]: wte and lm_head may
  // have more rows than the vocabulary (the padding), which are zeroed; other shapes must match.
  void read(const std::string& name, DType dt, Shape shape, void* dst) const;

 private:
  const SafeTensorsFile& file_of(const std::string& hf_name) const;
  std::string dir_;
  ModelConfig cfg_;
  std::vector<std::unique_ptr<SafeTensorsFile>> files_;
  std::vector<std::pair<std::string, const SafeTensorsFile*>> where_;  // HF name -> its file
};

}  // namespace mousse::hf
