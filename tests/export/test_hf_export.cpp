// `mousse export` (bare safetensors and Hugging Face directories) and the import of both:
// round trips are bit-exact in f32, bf16 rounds to nearest even, and every way a file can fail
// to be one of our models is an error naming the tensor or key and the file.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "core/safetensors.h"
#include "model/hf_format.h"
#include "model/params.h"
#include "train/weight_source.h"
#include "train/weights_export.h"

using namespace mousse;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/mousse-export-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string vocab_dir() {
  if (const char* d = std::getenv("MOUSSE_GPT2_DIR"); d && *d) return d;
  if (const char* d = std::getenv("MOUSSE_SHARED_DATA"); d && *d) return std::string(d) + "/gpt2";
  return "../shared/data/gpt2";
}

ModelConfig small_model(int n_layer = 2, int n_head = 2, int d_model = 16) {
  ModelConfig m;
  m.n_layer = n_layer;
  m.n_head = n_head;
  m.d_model = d_model;
  m.max_seq_len = 32;
  m.rope_base = 5000.0 + 10000.0 * (std::rand() % 7);
  return m;
}

json model_json(const ModelConfig& m) {
  return {{"preset", m.preset},         {"n_layer", m.n_layer},
          {"n_head", m.n_head},         {"d_model", m.d_model},
          {"vocab_size", m.vocab_size}, {"padded_vocab", m.padded_vocab},
          {"max_seq_len", m.max_seq_len}, {"rope_base", m.rope_base}};
}

using Weights = std::map<std::string, std::vector<float>>;

// Fresh normal weights (padded rows included, so an export must drop them), written as a file
// like `mousse export` writes: canonical names and the model config as metadata.
Weights make_weights(const std::string& path, const ModelConfig& m, uint64_t seed,
                     bool with_metadata = true) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  Weights w;
  SafeTensorsWriter out;
  for (const ParamSpec& s : param_specs(m)) {
    auto& v = w[s.name];
    v.resize(size_t(s.rows * s.cols));
    for (float& x : v) x = normal(rng) * (s.role == ParamRole::matrix ? 0.2f : 1.f);
    out.add(s.name, DType::f32, Shape{s.rows, s.cols},
            [&v](void* dst) { std::memcpy(dst, v.data(), v.size() * 4); });
  }
  if (with_metadata) out.set_metadata("model", model_json(m).dump());
  out.write_atomic(path);
  return w;
}

std::vector<float> read_canonical(const WeightSource& src, const ParamSpec& s) {
  std::vector<float> v(size_t(s.rows * s.cols));
  src.read(s.name, DType::f32, Shape{s.rows, s.cols}, v.data());
  return v;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// The error of opening `dir` contains every one of `parts`.
void expect_import_error(const std::string& dir, const std::vector<std::string>& parts) {
  const std::string msg = error_of([&] { WeightSource src(dir); });
  INFO("error: " << msg);
  for (const auto& p : parts) CHECK_THAT(msg, Catch::Contains(p));
}

std::string export_hf_dir(const std::string& weights, const std::string& out, DType dt) {
  HfExportOptions opt;
  opt.dtype = dt;
  opt.vocab_dir = vocab_dir();
  export_hf(WeightSource(weights), out, opt);
  return out;
}

// Every tensor of a safetensors file, to rewrite it changed.
struct RawTensor { DType dt; Shape shape; std::vector<char> bytes; };
std::map<std::string, RawTensor> read_all(const std::string& path) {
  SafeTensorsFile f(path);
  std::map<std::string, RawTensor> out;
  for (auto& e : f.entries()) {
    RawTensor t{e.dtype, e.shape, std::vector<char>(size_t(e.shape.numel()) * dtype_size(e.dtype))};
    f.read(e.name, e.dtype, e.shape, t.bytes.data());
    out[e.name] = std::move(t);
  }
  return out;
}
void write_all(const std::string& path, const std::map<std::string, RawTensor>& tensors) {
  SafeTensorsWriter w;
  for (auto& [name, t] : tensors)
    w.add(name, t.dt, t.shape, [&t](void* dst) { std::memcpy(dst, t.bytes.data(), t.bytes.size()); });
  w.set_metadata("format", "pt");
  w.write_atomic(path);
}
json read_json(const std::string& path) { return json::parse(std::ifstream(path)); }
void write_json(const std::string& path, const json& j) { std::ofstream(path) << j.dump(2); }

uint64_t fresh_seed() {
  const uint64_t s = std::random_device{}();
  std::srand(unsigned(s));
  return s;
}

}  // namespace

TEST_CASE("f32 Hugging Face export and import are bit-exact", "[export]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  TempDir tmp;
  const ModelConfig m = small_model(1 + int(seed % 3), 2, 16 + 8 * int(seed % 2));
  const Weights w = make_weights(tmp / "w.safetensors", m, seed);
  const std::string dir = export_hf_dir(tmp / "w.safetensors", tmp / "hf", DType::f32);

  for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "vocab.json",
                        "merges.txt", "tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json", "README.md"})
    CHECK(fs::exists(fs::path(dir) / f));
  CHECK_FALSE(fs::exists(tmp / ".hf.tmp." + std::to_string(getpid())));

  const json cfg = read_json(dir + "/config.json");
  CHECK(cfg["model_type"] == "qwen3");
  CHECK(cfg["architectures"][0] == "Qwen3ForCausalLM");
  CHECK(cfg["hidden_act"] == "relu");
  CHECK(cfg["hidden_size"] == m.d_model);
  CHECK(cfg["num_hidden_layers"] == m.n_layer);
  CHECK(cfg["num_key_value_heads"] == m.n_head);
  CHECK(cfg["head_dim"] == m.head_dim());
  CHECK(cfg["intermediate_size"] == 4 * m.d_model);
  CHECK(cfg["vocab_size"] == 50257);
  CHECK(cfg["rope_parameters"]["rope_theta"] == m.rope_base);
  CHECK(cfg["tie_word_embeddings"] == false);
  CHECK(cfg["torch_dtype"] == "float32");

  // The file holds gate = up = fc, norms = 1, and only the real vocabulary rows.
  SafeTensorsFile f(dir + "/model.safetensors");
  CHECK(f.metadata().at("format") == "pt");
  const int64_t C = m.d_model, V = m.vocab_size;
  std::vector<float> emb(size_t(V * C));
  f.read("model.embed_tokens.weight", DType::f32, Shape{V, C}, emb.data());
  CHECK(std::memcmp(emb.data(), w.at("wte").data(), emb.size() * 4) == 0);
  std::vector<float> up(size_t(4 * C * C));
  f.read("model.layers.0.mlp.up_proj.weight", DType::f32, Shape{4 * C, C}, up.data());
  CHECK(std::memcmp(up.data(), w.at("blocks.0.mlp.fc").data(), up.size() * 4) == 0);

  // Import: every canonical weight bit for bit, the padded rows zero.
  const WeightSource src(dir);
  REQUIRE(src.is_hf());
  CHECK(src.model()->d_model == m.d_model);
  CHECK(src.model()->n_layer == m.n_layer);
  CHECK(src.model()->n_head == m.n_head);
  CHECK(src.model()->padded_vocab == m.padded_vocab);
  CHECK(src.model()->rope_base == m.rope_base);
  CHECK(src.model()->max_seq_len == m.max_seq_len);
  for (const ParamSpec& s : param_specs(m)) {
    INFO(s.name);
    const std::vector<float> got = read_canonical(src, s);
    const std::vector<float>& want = w.at(s.name);
    const size_t real = s.role == ParamRole::matrix ? want.size() : size_t(V * C);
    CHECK(std::memcmp(got.data(), want.data(), real * 4) == 0);
    for (size_t i = real; i < got.size(); i++) REQUIRE(got[i] == 0.0f);
  }
  // ... and once more through a bare export of the import: the same bytes as a re-export.
  export_safetensors(src, tmp / "back.safetensors", DType::f32, false);
  const std::string again = export_hf_dir(tmp / "back.safetensors", tmp / "hf2", DType::f32);
  CHECK(read_all(again + "/model.safetensors").size() == read_all(dir + "/model.safetensors").size());
  std::ifstream a(dir + "/model.safetensors", std::ios::binary), b(again + "/model.safetensors", std::ios::binary);
  CHECK(std::string(std::istreambuf_iterator<char>(a), {}) == std::string(std::istreambuf_iterator<char>(b), {}));
}

TEST_CASE("bf16 export rounds each weight to the nearest bfloat16, ties to even", "[export]") {
  // The rounding itself, on the tie cases.
  CHECK(float_to_bf16(bf16_to_float(0x3f80) + std::ldexp(1.f, -8)) == 0x3f80);   // tie, even below
  CHECK(float_to_bf16(bf16_to_float(0x3f81) + std::ldexp(1.f, -8)) == 0x3f82);   // tie, even above
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  TempDir tmp;
  const ModelConfig m = small_model();
  const Weights w = make_weights(tmp / "w.safetensors", m, seed);
  const std::string dir = export_hf_dir(tmp / "w.safetensors", tmp / "hf", DType::bf16);
  CHECK(read_json(dir + "/config.json")["torch_dtype"] == "bfloat16");
  SafeTensorsFile f(dir + "/model.safetensors");
  for (auto& e : f.entries()) REQUIRE(e.dtype == DType::bf16);
  const int64_t C = m.d_model;
  std::vector<uint16_t> q(size_t(C * C));
  f.read("model.layers.1.self_attn.k_proj.weight", DType::bf16, Shape{C, C}, q.data());
  const auto& src = w.at("blocks.1.attn.k");
  for (size_t i = 0; i < q.size(); i++) {
    REQUIRE(q[i] == float_to_bf16(src[i]));
    // nearest: no other bfloat16 is closer
    const float r = bf16_to_float(q[i]);
    REQUIRE(std::fabs(r - src[i]) <= std::fabs(bf16_to_float(uint16_t(q[i] + 1)) - src[i]));
    REQUIRE(std::fabs(r - src[i]) <= std::fabs(bf16_to_float(uint16_t(q[i] - 1)) - src[i]));
  }
  // The import reads those values back exactly.
  const WeightSource back(dir);
  const ParamSpec spec{"blocks.1.attn.k", ParamRole::matrix, C, C};
  const std::vector<float> got = read_canonical(back, spec);
  for (size_t i = 0; i < got.size(); i++) REQUIRE(got[i] == bf16_to_float(q[i]));
}

TEST_CASE("importing a directory that is not one of our models names what is wrong", "[export]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  TempDir tmp;
  const ModelConfig m = small_model();
  make_weights(tmp / "w.safetensors", m, seed);
  const std::string good = export_hf_dir(tmp / "w.safetensors", tmp / "good", DType::f32);
  std::mt19937_64 rng(seed);
  int n = 0;
  // A fresh copy of the good export, changed by `edit`; its error must name `parts` and the file.
  auto variant = [&](const std::function<void(const std::string&)>& edit,
                     std::vector<std::string> parts, const std::string& file) {
    const std::string d = tmp / ("v" + std::to_string(n++));
    fs::copy(good, d);
    edit(d);
    parts.push_back(d + "/" + file);
    expect_import_error(d, parts);
  };
  auto config_edit = [&](const std::string& key, const json& value, std::vector<std::string> parts) {
    variant([&](const std::string& d) {
      json c = read_json(d + "/config.json");
      if (value.is_discarded()) c.erase(key);
      else c[key] = value;
      write_json(d + "/config.json", c);
    }, parts, "config.json");
  };
  const json erase = json(json::value_t::discarded);
  config_edit("model_type", "llama", {"model_type", "qwen3"});
  config_edit("model_type", erase, {"model_type"});
  config_edit("architectures", json::array({"LlamaForCausalLM"}), {"architectures"});
  config_edit("hidden_act", "silu", {"hidden_act", "relu"});
  config_edit("hidden_act", erase, {"hidden_act"});  // Qwen3's default is silu
  config_edit("num_key_value_heads", 1, {"num_key_value_heads"});
  config_edit("head_dim", m.head_dim() * 2, {"head_dim"});
  config_edit("intermediate_size", 3 * m.d_model, {"intermediate_size"});
  config_edit("rms_norm_eps", 1e-5, {"rms_norm_eps"});
  config_edit("tie_word_embeddings", true, {"tie_word_embeddings"});
  config_edit("attention_bias", true, {"attention_bias"});
  config_edit("use_sliding_window", true, {"use_sliding_window"});
  config_edit("layer_types", json::array({"sliding_attention", "full_attention"}), {"layer_types"});
  config_edit("rope_parameters", {{"rope_type", "linear"}, {"factor", 2.0}}, {"rope_parameters", "linear"});
  config_edit("rope_theta", 12345.0, {"rope_parameters", "rope_theta"});
  config_edit("hidden_size", "wide", {"hidden_size"});
  config_edit("num_hidden_layers", 0, {"num_hidden_layers"});
  // Consistent config, inconsistent weights: the tensor check names the weights file.
  variant([&](const std::string& d) {
    json c = read_json(d + "/config.json");
    c["num_hidden_layers"] = m.n_layer + 1;
    write_json(d + "/config.json", c);
  }, {"missing", "model.layers." + std::to_string(m.n_layer) + ".self_attn.q_proj.weight"},
          "model.safetensors");
  variant([](const std::string& d) { std::ofstream(d + "/config.json") << "{\"model_type\": "; },
          {"not valid JSON"}, "config.json");

  // Tensors: a norm that is not all ones, gate != up, a bias, a missing, a misnamed, a misshapen,
  // a tied (absent) lm_head, an integer tensor. Positions are random.
  const int64_t C = m.d_model;
  auto tensor_edit = [&](const std::function<void(std::map<std::string, RawTensor>&)>& edit,
                         std::vector<std::string> parts) {
    variant([&](const std::string& d) {
      auto t = read_all(d + "/model.safetensors");
      edit(t);
      write_all(d + "/model.safetensors", t);
    }, parts, "model.safetensors");
  };
  const std::string layer = "model.layers." + std::to_string(rng() % uint64_t(m.n_layer)) + ".";
  for (const std::string norm : {layer + "input_layernorm.weight", layer + "self_attn.k_norm.weight",
                                 std::string("model.norm.weight")}) {
    tensor_edit([&](auto& t) {
      auto& r = t.at(norm);
      float* v = reinterpret_cast<float*>(r.bytes.data());
      v[rng() % uint64_t(r.shape.numel())] = 1.0f + std::ldexp(1.0f, -23);  // one ulp off
    }, {norm, "exactly 1"});
  }
  tensor_edit([&](auto& t) {
    float* v = reinterpret_cast<float*>(t.at(layer + "mlp.up_proj.weight").bytes.data());
    const size_t i = rng() % size_t(4 * C * C);
    v[i] = std::nextafter(v[i], 10.f);
  }, {layer + "mlp.gate_proj.weight", layer + "mlp.up_proj.weight", "differ"});
  tensor_edit([&](auto& t) {
    t[layer + "self_attn.q_proj.bias"] = RawTensor{DType::f32, Shape{C}, std::vector<char>(size_t(C) * 4)};
  }, {layer + "self_attn.q_proj.bias", "unexpected"});
  tensor_edit([&](auto& t) { t.erase(layer + "self_attn.q_norm.weight"); },
              {layer + "self_attn.q_norm.weight", "missing"});
  tensor_edit([&](auto& t) { t.erase("lm_head.weight"); }, {"lm_head.weight", "missing"});
  tensor_edit([&](auto& t) {
    t[layer + "self_attn.query.weight"] = t.at(layer + "self_attn.q_proj.weight");
    t.erase(layer + "self_attn.q_proj.weight");
  }, {layer + "self_attn.q_proj.weight", layer + "self_attn.query.weight", "misnamed"});
  tensor_edit([&](auto& t) {
    auto& r = t.at(layer + "mlp.down_proj.weight");
    r.shape = Shape{4 * C, C};  // transposed
  }, {layer + "mlp.down_proj.weight", "wrong shape"});
  tensor_edit([&](auto& t) {
    auto& r = t.at(layer + "self_attn.v_proj.weight");
    r.dt = DType::i32;
  }, {layer + "self_attn.v_proj.weight", "I32"});
}

TEST_CASE("a sharded Hugging Face directory loads like a single file, and a bad index is refused", "[export]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  TempDir tmp;
  const ModelConfig m = small_model();
  const Weights w = make_weights(tmp / "w.safetensors", m, seed);
  const std::string dir = export_hf_dir(tmp / "w.safetensors", tmp / "hf", DType::f32);
  auto all = read_all(dir + "/model.safetensors");
  std::map<std::string, RawTensor> a, b;
  json map = json::object();
  for (auto& [name, t] : all) {
    const bool first = name.rfind("model.layers.0.", 0) == 0 || name == "lm_head.weight";
    (first ? a : b)[name] = t;
    map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_all(dir + "/model-00001-of-00002.safetensors", a);
  write_all(dir + "/model-00002-of-00002.safetensors", b);
  fs::remove(dir + "/model.safetensors");
  write_json(dir + "/model.safetensors.index.json", {{"metadata", json::object()}, {"weight_map", map}});
  {
    const WeightSource src(dir);
    for (const ParamSpec& s : param_specs(m)) {
      const std::vector<float> got = read_canonical(src, s);
      const size_t real = s.role == ParamRole::matrix ? got.size() : size_t(m.vocab_size * m.d_model);
      REQUIRE(std::memcmp(got.data(), w.at(s.name).data(), real * 4) == 0);
    }
  }
  const std::string index = dir + "/model.safetensors.index.json";
  map["lm_head.weight"] = "model-00002-of-00002.safetensors";  // the tensor is in the other file
  write_json(index, {{"weight_map", map}});
  expect_import_error(dir, {"lm_head.weight", "model-00001-of-00002.safetensors"});
  map["lm_head.weight"] = "../outside.safetensors";
  write_json(index, {{"weight_map", map}});
  expect_import_error(dir, {"lm_head.weight", "../outside.safetensors"});
  map.erase("lm_head.weight");
  write_json(index, {{"weight_map", map}});
  expect_import_error(dir, {"lm_head.weight", "does not list"});
}

TEST_CASE("canonical weight files are checked against the model's tensor set", "[export]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  TempDir tmp;
  const ModelConfig m = small_model();
  make_weights(tmp / "w.safetensors", m, seed);
  auto rewrite = [&](const std::string& out, const std::function<void(std::map<std::string, RawTensor>&)>& edit,
                     bool metadata) {
    auto t = read_all(tmp / "w.safetensors");
    edit(t);
    SafeTensorsWriter w;
    for (auto& [name, r] : t)
      w.add(name, r.dt, r.shape, [&r](void* dst) { std::memcpy(dst, r.bytes.data(), r.bytes.size()); });
    if (metadata) w.set_metadata("model", model_json(m).dump());
    w.write_atomic(out);
    return out;
  };
  const std::vector<ParamSpec> specs = param_specs(m);
  for (bool metadata : {true, false}) {
    INFO("model metadata: " << metadata);
    // With the model in its metadata the file is checked when opened; without, when loaded.
    auto check = [&](const std::string& path, const std::vector<std::string>& parts) {
      const std::string msg = error_of([&] { WeightSource(path).check_fits(specs); });
      INFO(msg);
      CHECK_THAT(msg, Catch::Contains(path));
      for (auto& p : parts) CHECK_THAT(msg, Catch::Contains(p));
    };
    const std::string tag = metadata ? "m" : "n";
    check(rewrite(tmp / (tag + "missing.safetensors"), [](auto& t) { t.erase("blocks.1.attn.v"); }, metadata),
          {"missing", "'blocks.1.attn.v'"});
    check(rewrite(tmp / (tag + "extra.safetensors"), [&](auto& t) { t["blocks.9.attn.q"] = t.at("blocks.0.attn.q"); }, metadata),
          {"unexpected", "'blocks.9.attn.q'"});
    check(rewrite(tmp / (tag + "renamed.safetensors"), [&](auto& t) {
            t["blocks.0.mlp.c_fc"] = t.at("blocks.0.mlp.fc");
            t.erase("blocks.0.mlp.fc");
          }, metadata),
          {"'blocks.0.mlp.fc'", "'blocks.0.mlp.c_fc'", "misnamed"});
    check(rewrite(tmp / (tag + "shape.safetensors"), [&](auto& t) { t.at("wte").shape = Shape{m.d_model, m.padded_vocab}; }, metadata),
          {"'wte'", "wrong shape"});
  }
  // A checkpoint's optimizer state is not a weight: allowed beside them.
  const std::string ok = rewrite(tmp / "opt.safetensors", [&](auto& t) {
    t["optimizer/blocks.0.attn.q.m"] = t.at("blocks.0.attn.q");
  }, true);
  CHECK_NOTHROW(WeightSource(ok).check_fits(specs));
  // Another model size into this one: names the Hugging Face dims.
  const std::string dir = export_hf_dir(tmp / "w.safetensors", tmp / "hf", DType::f32);
  const ModelConfig other = small_model(m.n_layer, m.n_head, m.d_model * 2);
  const std::string msg = error_of([&] { WeightSource(dir).check_fits(param_specs(other)); });
  CHECK_THAT(msg, Catch::Contains("hidden_size " + std::to_string(m.d_model)));
  // Corrupt metadata names the file.
  {
    SafeTensorsWriter w;
    w.add("wte", DType::f32, Shape{1}, [](void* d) { std::memset(d, 0, 4); });
    w.set_metadata("model", "{not json");
    w.write_atomic(tmp / "corrupt.safetensors");
    const std::string e = error_of([&] { WeightSource(tmp / "corrupt.safetensors"); });
    CHECK_THAT(e, Catch::Contains(tmp / "corrupt.safetensors"));
    CHECK_THAT(e, Catch::Contains("metadata"));
  }
}

TEST_CASE("export never replaces what exists unless asked, and never a foreign directory", "[export]") {
  const uint64_t seed = fresh_seed();
  TempDir tmp;
  const ModelConfig m = small_model();
  make_weights(tmp / "w.safetensors", m, seed);
  const WeightSource src(tmp / "w.safetensors");
  HfExportOptions opt;
  opt.vocab_dir = vocab_dir();
  // An existing file for a bare export.
  std::ofstream(tmp / "taken.safetensors") << "mine";
  CHECK_THAT(error_of([&] { export_safetensors(src, tmp / "taken.safetensors", DType::f32, false); }),
             Catch::Contains("--overwrite"));
  CHECK(std::ifstream(tmp / "taken.safetensors").get() == 'm');
  export_safetensors(src, tmp / "taken.safetensors", DType::f32, true);
  CHECK(WeightSource(tmp / "taken.safetensors").model()->d_model == m.d_model);
  // A directory with someone's files: refused with and without --overwrite, left as it was.
  fs::create_directories(tmp / "notes");
  std::ofstream(tmp / "notes/todo.txt") << "keep";
  CHECK_THAT(error_of([&] { export_hf(src, tmp / "notes", opt); }), Catch::Contains("--overwrite"));
  opt.overwrite = true;
  CHECK_THAT(error_of([&] { export_hf(src, tmp / "notes", opt); }), Catch::Contains("not an earlier export"));
  CHECK(fs::exists(tmp / "notes/todo.txt"));
  // An earlier export is replaced with --overwrite (and only with it); an empty directory is used.
  opt.overwrite = false;
  export_hf(src, tmp / "hf", opt);
  CHECK_THAT(error_of([&] { export_hf(src, tmp / "hf", opt); }), Catch::Contains("--overwrite"));
  opt.overwrite = true;
  opt.dtype = DType::f32;
  export_hf(src, tmp / "hf", opt);
  CHECK(read_json(tmp / "hf/config.json")["torch_dtype"] == "float32");
  fs::create_directories(tmp / "empty");
  opt.overwrite = false;
  export_hf(src, tmp / "empty", opt);
  CHECK(fs::exists(tmp / "empty/model.safetensors"));
  // A missing vocabulary fails before anything is written.
  opt.vocab_dir = tmp / "novocab";
  CHECK_THAT(error_of([&] { export_hf(src, tmp / "hf3", opt); }), Catch::Contains("novocab"));
  CHECK_FALSE(fs::exists(tmp / "hf3"));
  for (auto& e : fs::directory_iterator(tmp.path))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
}
