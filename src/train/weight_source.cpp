#include "train/weight_source.h"

#include <filesystem>

#include "backend/ops.h"
#include "core/safetensors.h"
#include "model/hf_format.h"
#include "model/tensor_set.h"
#include "train/checkpoint.h"

namespace mousse {

namespace fs = std::filesystem;

namespace {
const std::string kOptim = "optimizer/";  // a checkpoint's optimizer state (train/checkpoint.h)
const char* kCanonicalHint =
    "expected the canonical names (docs/export.md): wte, lm_head, blocks.{i}.attn.{q,k,v,o}, "
    "blocks.{i}.mlp.{fc,proj}";

std::vector<TensorSpec> specs_of(const std::vector<ParamSpec>& specs) {
  std::vector<TensorSpec> out;
  for (const ParamSpec& s : specs) out.push_back({s.name, Shape{s.rows, s.cols}});
  return out;
}
}  // namespace

WeightSource::~WeightSource() = default;

std::string WeightSource::resolve(const std::string& path) {
  std::error_code ec;
  if (hf::is_model_dir(path)) return path;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / hf::kConfigFile, ec))
      fail(path, ": holds ", hf::kConfigFile, " but neither ", hf::kWeightsFile, " nor ",
           hf::kIndexFile, " (an incomplete Hugging Face model directory?)");
    std::string p = latest_checkpoint(path);
    if (p.empty())
      fail(path, ": a directory with no checkpoint (ckpt_*.safetensors) and not a Hugging Face ",
           "model directory (config.json + model.safetensors)");
    return p;
  }
  if (!fs::exists(path, ec))
    fail("weights '", path, "' do not exist (expected a checkpoint, a checkpoint directory, a ",
         ".safetensors written by `mousse export` or a directory written by ",
         "`mousse export --format hf`)");
  return path;
}

WeightSource::WeightSource(const std::string& path) : path_(resolve(path)) {
  if (hf::is_model_dir(path_)) {
    hf_ = std::make_unique<hf::ModelDir>(path_);
    model_ = hf_->config();
    has_model_ = true;
    return;
  }
  file_ = std::make_unique<SafeTensorsFile>(path_);
  // Model dims and training info: a checkpoint's "mousse" metadata, or what `mousse export`
  // carried along ("model", "step").
  // Typed reads: corrupt metadata is an error naming the file and the field.
  json model;
  if (file_->metadata().count("mousse")) {
    const CheckpointMeta meta = read_checkpoint_meta(path_);
    run_config_ = meta.config;
    if (run_config_.contains("model")) model = run_config_["model"];
    step_ = meta.step;
  } else {
    model = file_->metadata_json("model");
    const json step = file_->metadata_json("step");
    if (!step.is_null()) step_ = ConfigNode(json{{"step", step}}, "metadata", path_).integer("step", {0, kMaxCount});
  }
  if (!model.is_null()) {
    if (!model.is_object()) fail(path_, ": corrupt mousse metadata (the model config is not an object)");
    model_ = model_config_from(ConfigNode(model, "model", path_));
    has_model_ = true;
    check_fits(param_specs(model_));
  }
}

void WeightSource::check_fits(const std::vector<ParamSpec>& specs) const {
  if (hf_) {
    // The padded rows of wte / lm_head are not exported: any padding at least the vocabulary fits.
    std::vector<ParamSpec> have = param_specs(model_);
    for (ParamSpec& h : have)
      for (const ParamSpec& s : specs)
        if (s.name == h.name && s.role != ParamRole::matrix && s.rows >= model_.vocab_size)
          h.rows = s.rows;
    check_tensor_set(path_ + " (as our tensors)", specs_of(have), specs_of(specs),
                     "the Hugging Face model has hidden_size " + std::to_string(model_.d_model) +
                         ", " + std::to_string(model_.n_layer) + " layers and vocab_size " +
                         std::to_string(model_.vocab_size) + ": another model size than this one");
    return;
  }
  std::vector<TensorSpec> present;
  for (auto& e : file_->entries())
    if (e.name.rfind(kOptim, 0) != 0) present.push_back({e.name, e.shape});
  check_tensor_set(path_, present, specs_of(specs), kCanonicalHint);
}

void WeightSource::read(const std::string& name, DType dt, Shape shape, void* dst) const {
  if (hf_) hf_->read(name, dt, shape, dst);
  else file_->read(name, dt, shape, dst);
}

void WeightSource::load(Ops& ops, ParamTable& params) const {
  std::vector<ParamSpec> specs;
  for (const Param& p : params.params()) specs.push_back({p.name, p.role, p.rows, p.cols});
  check_fits(specs);  // before any weight is read: every mismatch at once
  for (Param& p : params.params()) {
    std::vector<char> host(p.weight.bytes());
    read(p.name, p.weight.dtype, p.weight.shape, host.data());
    ops.from_host(p.weight, host.data());
  }
}

}  // namespace mousse
