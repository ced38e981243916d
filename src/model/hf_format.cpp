#include "model/hf_format.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "model/tensor_set.h"

namespace mousse::hf {

namespace fs = std::filesystem;

namespace {

// One tensor of the Qwen3 checkpoint: where its values come from (a canonical weight, or none
// for an RMSNorm weight, which is all ones).
struct HfTensor {
  std::string name;
  Shape shape;
  std::string source;  // canonical name; "" = a norm weight
};

std::vector<HfTensor> hf_tensors(const ModelConfig& cfg) {
  const int64_t C = cfg.d_model, F = 4 * C, V = cfg.vocab_size, hd = cfg.head_dim();
  std::vector<HfTensor> t;
  t.push_back({"model.embed_tokens.weight", Shape{V, C}, "wte"});
  for (int l = 0; l < cfg.n_layer; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string b = "blocks." + std::to_string(l) + ".";
    t.push_back({p + "input_layernorm.weight", Shape{C}, ""});
    for (const char* x : {"q", "k", "v", "o"})
      t.push_back({p + "self_attn." + x + "_proj.weight", Shape{C, C}, b + "attn." + x});
    t.push_back({p + "self_attn.q_norm.weight", Shape{hd}, ""});
    t.push_back({p + "self_attn.k_norm.weight", Shape{hd}, ""});
    t.push_back({p + "post_attention_layernorm.weight", Shape{C}, ""});
    t.push_back({p + "mlp.gate_proj.weight", Shape{F, C}, b + "mlp.fc"});
    t.push_back({p + "mlp.up_proj.weight", Shape{F, C}, b + "mlp.fc"});
    t.push_back({p + "mlp.down_proj.weight", Shape{C, F}, b + "mlp.proj"});
  }
  t.push_back({"model.norm.weight", Shape{C}, ""});
  t.push_back({"lm_head.weight", Shape{V, C}, "lm_head"});
  return t;
}

const char* kNamingHint =
    "expected exactly the tensors of Qwen3ForCausalLM without biases: model.embed_tokens, "
    "model.layers.{i}.{input_layernorm, self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm, "
    "post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head (each .weight)";

const std::string kUp = "mlp.up_proj.weight";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot open ", path, ": ", std::strerror(errno));
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
}

// 1 ≤ value ≤ INT_MAX, read as an integer (HF's default when absent).
int positive_int(const ConfigNode& n, const std::string& key, int64_t def) {
  return int(n.integer(key, def, {1, kMaxInt32}));
}

}  // namespace

bool is_model_dir(const std::string& path) {
  std::error_code ec;
  const fs::path d(path);
  return fs::is_directory(d, ec) && fs::exists(d / kConfigFile, ec) &&
         (fs::exists(d / kWeightsFile, ec) || fs::exists(d / kIndexFile, ec));
}

json config_json(const ModelConfig& cfg, DType dtype) {
  MOUSSE_CHECK(dtype == DType::f32 || dtype == DType::bf16, "export dtype");
  const char* dt = dtype == DType::bf16 ? "bfloat16" : "float32";
  // transformers 5 reads rope_parameters and dtype, version 4 (and tools built on it) rope_theta
  // and torch_dtype: both are written, with the same values.
  return json{
      {"architectures", {"Qwen3ForCausalLM"}},
      {"model_type", "qwen3"},
      {"vocab_size", cfg.vocab_size},
      {"hidden_size", cfg.d_model},
      {"intermediate_size", 4 * cfg.d_model},
      {"num_hidden_layers", cfg.n_layer},
      {"num_attention_heads", cfg.n_head},
      {"num_key_value_heads", cfg.n_head},
      {"head_dim", cfg.head_dim()},
      {"hidden_act", "relu"},
      {"max_position_embeddings", cfg.max_seq_len},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", cfg.rope_base},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", cfg.rope_base}}},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"tie_word_embeddings", false},
      {"use_sliding_window", false},
      {"sliding_window", nullptr},
      {"max_window_layers", cfg.n_layer},
      {"layer_types", std::vector<std::string>(size_t(cfg.n_layer), "full_attention")},
      {"bos_token_id", kEos},
      {"eos_token_id", kEos},
      {"initializer_range", 0.02},
      {"use_cache", true},
      {"torch_dtype", dt},
      {"dtype", dt},
  };
}

ModelConfig model_config_from_json(const json& j, const std::string& file) {
  if (!j.is_object()) fail(file, ": expected a JSON object");
  const ConfigNode n(j, "", file);
  auto must_be = [&](const std::string& key, bool ok, const std::string& what) {
    if (!ok) n.error(key, what + ", got " + j.at(key).dump() +
                              " (not a model exported by `mousse export --format hf`)");
  };
  // Absent keys take Qwen3Config's defaults, which is what transformers would run.
  if (!n.has("model_type")) n.error("model_type", "missing; expected \"qwen3\"");
  must_be("model_type", j.at("model_type") == "qwen3", "expected \"qwen3\"");
  if (n.has("architectures")) {
    auto a = n.strings("architectures", {});
    must_be("architectures", a.size() == 1 && a[0] == "Qwen3ForCausalLM",
            "expected [\"Qwen3ForCausalLM\"]");
  }
  if (n.string("hidden_act", "silu") != "relu")
    n.error("hidden_act", "expected \"relu\" (our MLP is relu², i.e. relu(gate)·up with gate = up), got \"" +
                              n.string("hidden_act", "silu") + "\"");
  for (const char* key : {"attention_bias", "mlp_bias", "tie_word_embeddings", "use_sliding_window"})
    if (n.boolean(key, false))
      n.error(key, "expected false (our model has no biases, an untied lm_head and full attention)");
  if (n.has("layer_types"))
    for (const std::string& t : n.strings("layer_types", {}))
      if (t != "full_attention") n.error("layer_types", "expected only \"full_attention\", got \"" + t + "\"");
  if (const double eps = n.number("rms_norm_eps", 1e-6, NumRange::above(0)); eps != 1e-6)
    n.error("rms_norm_eps", "expected 1e-6 (our RMSNorm's), got " + j.at("rms_norm_eps").dump());

  // RoPE: default type, theta from rope_parameters (transformers 5) or rope_theta (version 4).
  double theta = 10000.0;  // transformers' default_theta
  const bool top_theta = n.has("rope_theta");
  if (top_theta) theta = n.number("rope_theta", NumRange::above(1));
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (!n.has(key)) continue;
    const ConfigNode r = n.child(key);
    const std::string type = r.has("rope_type") ? r.string("rope_type") : r.string("type", "default");
    if (type != "default")
      n.error(key, "expected rope_type \"default\" (plain RoPE), got \"" + type + "\"");
    if (r.has("partial_rotary_factor") && r.number("partial_rotary_factor", NumRange::above(0)) != 1.0)
      n.error(key, "expected no partial_rotary_factor (RoPE over the whole head)");
    if (r.has("rope_theta")) {
      const double t = r.number("rope_theta", NumRange::above(1));
      if (top_theta && t != theta)
        n.error(key, "rope_theta " + j.at(key).at("rope_theta").dump() + " differs from the top-level rope_theta " +
                         j.at("rope_theta").dump());
      theta = t;
    }
  }
  if (!(theta > 1) || !std::isfinite(theta))
    n.error("rope_theta", "expected a finite number > 1, got " + std::to_string(theta));

  ModelConfig m;
  m.preset = "custom";
  m.d_model = positive_int(n, "hidden_size", 4096);
  m.n_layer = positive_int(n, "num_hidden_layers", 32);
  m.n_head = positive_int(n, "num_attention_heads", 32);
  if (m.d_model % m.n_head)
    n.error("hidden_size", "must be a multiple of num_attention_heads " + std::to_string(m.n_head));
  if (const int kv = positive_int(n, "num_key_value_heads", 32); kv != m.n_head)
    n.error("num_key_value_heads", "expected num_attention_heads (" + std::to_string(m.n_head) +
                                       "): our attention has no grouped keys and values, got " + std::to_string(kv));
  if (const int hd = positive_int(n, "head_dim", 128); hd != m.head_dim())
    n.error("head_dim", "expected hidden_size / num_attention_heads = " + std::to_string(m.head_dim()) +
                            ", got " + std::to_string(hd));
  if (m.head_dim() % 2) n.error("head_dim", "must be even for RoPE");
  if (const int64_t f = positive_int(n, "intermediate_size", 22016); f != 4 * int64_t(m.d_model))
    n.error("intermediate_size", "expected 4 · hidden_size = " + std::to_string(4 * int64_t(m.d_model)) +
                                     ", got " + std::to_string(f));
  m.vocab_size = positive_int(n, "vocab_size", 151936);
  if (m.vocab_size < 2) n.error("vocab_size", "must be >= 2");
  if (m.vocab_size > INT_MAX - 127) n.error("vocab_size", "too large");
  m.padded_vocab = (m.vocab_size + 127) / 128 * 128;  // our rows: a multiple of 128
  m.max_seq_len = positive_int(n, "max_position_embeddings", 32768);
  m.rope_base = theta;
  m.validate(file);
  return m;
}

void write_weights(const std::string& path, const ModelConfig& cfg, DType dtype,
                   const CanonicalReader& read) {
  MOUSSE_CHECK(dtype == DType::f32 || dtype == DType::bf16, "export dtype");
  std::map<std::string, ParamSpec> specs;
  for (const ParamSpec& s : param_specs(cfg)) specs[s.name] = s;
  SafeTensorsWriter w;
  for (const HfTensor& t : hf_tensors(cfg)) {
    const ParamSpec* spec = t.source.empty() ? nullptr : &specs.at(t.source);
    w.add(t.name, dtype, t.shape, [spec, dtype, n = size_t(t.shape.numel()), &read](void* dst) {
      std::vector<float> v;
      if (spec) {
        v.resize(size_t(spec->rows * spec->cols));
        read(*spec, v.data());
        v.resize(n);  // row-major: the first `vocab` rows of wte / lm_head
      } else {
        v.assign(n, 1.0f);
      }
      if (dtype == DType::f32) {
        std::memcpy(dst, v.data(), n * sizeof(float));
      } else {
        uint16_t* b = static_cast<uint16_t*>(dst);
        for (size_t i = 0; i < n; i++) b[i] = float_to_bf16(v[i]);
      }
    });
  }
  w.set_metadata("format", "pt");  // transformers refuses safetensors without it
  w.write_atomic(path);
}

ModelDir::~ModelDir() = default;

ModelDir::ModelDir(const std::string& dir) : dir_(dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) fail(dir, ": not a directory");
  const std::string config_path = (d / kConfigFile).string();
  if (!fs::exists(config_path, ec))
    fail(dir, ": no ", kConfigFile, " (expected a directory written by `mousse export --format hf`)");
  cfg_ = model_config_from_json(read_json(config_path), config_path);

  // The weights: one file, or shards listed by an index {"weight_map": {tensor: file}}.
  std::string label;  // what errors about the tensor set name
  std::map<std::string, std::string> index;
  if (fs::exists(d / kWeightsFile, ec)) {
    label = (d / kWeightsFile).string();
    files_.push_back(std::make_unique<SafeTensorsFile>(label));
    for (auto& e : files_.back()->entries()) where_.push_back({e.name, files_.back().get()});
  } else {
    label = (d / kIndexFile).string();
    const json j = read_json(label);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      fail(label, ": expected an object with a \"weight_map\" object {tensor: file}");
    std::map<std::string, const SafeTensorsFile*> opened;
    for (auto& [name, v] : j["weight_map"].items()) {
      if (!v.is_string()) fail(label, ": weight_map entry '", name, "' is not a file name");
      const std::string f = v.get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
        fail(label, ": weight_map entry '", name, "' names '", f, "', expected a file in ", dir);
      index[name] = f;
      if (!opened.count(f)) {
        files_.push_back(std::make_unique<SafeTensorsFile>((d / f).string()));
        opened[f] = files_.back().get();
      }
    }
    for (auto& [f, file] : opened)
      for (auto& e : file->entries()) {
        auto it = index.find(e.name);
        if (it == index.end() || it->second != f)
          fail(file->path(), ": holds tensor '", e.name, "', which ", label,
               it == index.end() ? " does not list" : " places in " + it->second);
        where_.push_back({e.name, file});
      }
    for (auto& [name, f] : index) {
      bool found = false;
      for (auto& [n, file] : where_) found = found || n == name;
      if (!found) fail(label, ": lists tensor '", name, "' in ", f, ", which does not hold it");
    }
  }

  // The exact set of tensors, then their values: norms all ones, gate = up.
  std::vector<TensorSpec> present, expected;
  for (auto& [name, file] : where_) present.push_back({name, file->find(name)->shape});
  const std::vector<HfTensor> tensors = hf_tensors(cfg_);
  for (const HfTensor& t : tensors) expected.push_back({t.name, t.shape});
  check_tensor_set(label, present, expected, kNamingHint);
  for (auto& [name, file] : where_) {
    const DType dt = file->find(name)->dtype;
    if (dt != DType::f32 && dt != DType::bf16 && dt != DType::f64)
      fail(file->path(), ": tensor '", name, "' is ", safetensors_dtype(dt), "; expected F32, BF16 or F64");
  }
  std::vector<double> a, b;
  for (const HfTensor& t : tensors) {
    const SafeTensorsFile& f = file_of(t.name);
    if (t.source.empty()) {  // an RMSNorm weight: ours have no gain
      a.resize(size_t(t.shape.numel()));
      f.read(t.name, DType::f64, t.shape, a.data());
      for (size_t i = 0; i < a.size(); i++)
        if (a[i] != 1.0)
          fail(f.path(), ": tensor '", t.name, "' element ", i, " is ", a[i],
               ", expected every norm weight to be exactly 1 (our RMSNorm has no learned gain)");
    } else if (ends_with(t.name, kUp)) {
      const std::string gate = t.name.substr(0, t.name.size() - kUp.size()) + "mlp.gate_proj.weight";
      a.resize(size_t(t.shape.numel()));
      b.resize(a.size());
      file_of(gate).read(gate, DType::f64, t.shape, a.data());
      f.read(t.name, DType::f64, t.shape, b.data());
      if (std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) != 0) {
        size_t i = 0;
        while (i < a.size() && std::memcmp(&a[i], &b[i], sizeof(double)) == 0) i++;
        fail(f.path(), ": tensors '", gate, "' and '", t.name, "' differ (element ", i, ": ", a[i],
             " vs ", b[i], "); our relu² MLP exports as gate = up, bit for bit");
      }
    }
  }
}

const SafeTensorsFile& ModelDir::file_of(const std::string& hf_name) const {
  for (auto& [n, f] : where_)
    if (n == hf_name) return *f;
  fail(dir_, ": no tensor '", hf_name, "'");
}

void ModelDir::read(const std::string& name, DType dt, Shape shape, void* dst) const {
  const HfTensor* t = nullptr;
  const std::vector<HfTensor> tensors = hf_tensors(cfg_);
  for (const HfTensor& x : tensors)
    if (x.source == name) { t = &x; break; }  // for mlp.fc: gate_proj (= up_proj, checked)
  if (!t) fail(dir_, ": the model has no weight '", name, "'");
  const bool vocab_rows = name == "wte" || name == "lm_head";
  if (vocab_rows ? (shape.ndim != 2 || shape[1] != t->shape[1] || shape[0] < t->shape[0])
                 : shape != t->shape)
    fail(dir_, ": tensor '", t->name, "' is ", t->shape.str(), ", which does not fit '", name,
         "' ", shape.str(), " of this model (another model size?)");
  file_of(t->name).read(t->name, dt, t->shape, dst);
  if (vocab_rows) {  // the padded rows, which never produce a logit
    const size_t have = size_t(t->shape.numel()) * dtype_size(dt);
    std::memset(static_cast<char*>(dst) + have, 0, size_t(shape.numel()) * dtype_size(dt) - have);
  }
}

}  // namespace mousse::hf
