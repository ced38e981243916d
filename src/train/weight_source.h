#pragma once
// Trained weights under their canonical names (docs/architecture.md, "The model"), from any file a user may hand to
// `init_from`, `mousse sample -w` or `mousse export`: a checkpoint (or a checkpoint directory:
// its newest), a .safetensors written by `mousse export`, or a Hugging Face directory written by
// `mousse export --format hf` (model/hf_format.h). Everything is checked when it is opened,
// before any work: the tensor set against the model (missing, extra and misnamed tensors are
// errors naming them and the file), the metadata, and for a Hugging Face directory that it is
// one of ours.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/json_config.h"
#include "model/model_config.h"
#include "model/params.h"

namespace mousse {

class Ops;
class SafeTensorsFile;
namespace hf { class ModelDir; }

class WeightSource {
 public:
  explicit WeightSource(const std::string& path);
  ~WeightSource();
  WeightSource(const WeightSource&) = delete;
  WeightSource& operator=(const WeightSource&) = delete;

  // A Hugging Face directory: itself; another directory: its newest checkpoint; a file: itself.
  // Errors name the path when it is none of these.
  static std::string resolve(const std::string& path);

  const std::string& path() const { return path_; }  // the resolved path
  bool is_hf() const { return hf_ != nullptr; }
  // The model the weights belong to; null for a .safetensors of canonical weights that carries
  // no model metadata (not written by mousse): its tensors are then checked by check_fits only.
  const ModelConfig* model() const { return has_model_ ? &model_ : nullptr; }
  // What the weights say about their training: a checkpoint's resolved run config (null
  // otherwise) and the optimizer step (also kept by `mousse export`; -1 when unknown).
  const json& run_config() const { return run_config_; }
  int64_t step() const { return step_; }

  // Checks that these weights fit a model whose parameters are `specs`: every tensor present
  // with its shape and none extra (a checkpoint's optimizer state aside); one error names the
  // file and every mismatch.
  void check_fits(const std::vector<ParamSpec>& specs) const;
  // Reads canonical weight `name` of `shape` converted to dt into dst. From a Hugging Face
  // directory the padded vocabulary rows of wte and lm_head are zeros.
  void read(const std::string& name, DType dt, Shape shape, void* dst) const;
  // check_fits(params), then every weight into its master tensor.
  void load(Ops& ops, ParamTable& params) const;

 private:
  std::string path_;
  std::unique_ptr<SafeTensorsFile> file_;
  std::unique_ptr<hf::ModelDir> hf_;
  bool has_model_ = false;
  ModelConfig model_;
  json run_config_;
  int64_t step_ = -1;
};

}  // namespace mousse
