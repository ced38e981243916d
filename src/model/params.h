#pragma once
// The parameter table: every weight of the GPT with its canonical name (docs/architecture.md), role, and
// its views into three flat buffers: master weights, gradients, and the working copy the
// forward/backward reads (bf16 on CUDA; the master itself when dtypes agree).
// Flat buffers make the global gradient norm, data-parallel reduction and checkpoints one loop.
#include <string>
#include <vector>

#include "core/arena.h"
#include "model/model_config.h"

namespace mousse {

// Which optimizer group a parameter belongs to.
enum class ParamRole { matrix, embedding, lm_head };
const char* role_name(ParamRole r);

struct Param {
  std::string name;  // "wte", "lm_head", "blocks.3.attn.q", "blocks.3.mlp.fc", ...
  ParamRole role;
  int64_t rows, cols;  // (out, in), like nn.Linear
  int64_t offset;      // element offset into the flat buffers
  Tensor weight;       // master weights (param dtype)
  Tensor grad;         // gradients (param dtype)
  Tensor compute;      // working copy in the activation dtype (aliases weight when equal)
  // Init: N(0, std²); spectral init for matrices, N(0, 1) for embeddings (docs/architecture.md).
  double init_std() const;
};

// A parameter's name, role and (out, in) shape, before any memory exists: the one list of the
// model's weights (docs/architecture.md, "The model"), from which the table is built and weight files are checked.
struct ParamSpec {
  std::string name;
  ParamRole role;
  int64_t rows, cols;
};
std::vector<ParamSpec> param_specs(const ModelConfig& cfg);

struct Precision {
  DType param = DType::f32;       // master weights, gradients, optimizer state
  DType activation = DType::f32;  // activations and matmul inputs (bf16 on CUDA by default)
  DType stats() const { return activation == DType::f64 ? DType::f64 : DType::f32; }
};

class ParamTable {
 public:
  // Plans the table for `cfg` in `arena` (categories "parameters" and "gradients").
  ParamTable(const ModelConfig& cfg, Precision prec, Arena& arena);
  ParamTable(const ParamTable&) = delete;
  ParamTable& operator=(const ParamTable&) = delete;

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  Param& get(const std::string& name);  // throws naming the unknown parameter
  const Param* find(const std::string& name) const;
  std::vector<Param*> with_role(ParamRole role);

  const Tensor& flat_weights() const { return weights_; }
  const Tensor& flat_grads() const { return grads_; }
  const Tensor& flat_compute() const { return compute_; }
  int64_t numel() const { return numel_; }
  bool has_separate_compute_copy() const { return separate_compute_; }

  // After allocate(): point every Param's tensors into the flat buffers.
  void bind();

 private:
  void add(const ParamSpec& spec);
  std::vector<Param> params_;
  Tensor weights_, grads_, compute_;
  int64_t numel_ = 0;
  bool separate_compute_ = false;
};

}  // namespace mousse
