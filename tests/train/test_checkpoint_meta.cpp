// The metadata mousse keeps inside a checkpoint's safetensors header ("mousse", a JSON string:
// step, data position, world size, optimizer host state, the resolved config; "mousse_shard" in
// the per-rank optimizer shards): each kind of corruption is an error that names the file and
// the field, from every command that reads it (--resume, export, sample, shard loading), never
// a raw JSON exception and never a wrapped value.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "model/model_config.h"
#include "model/params.h"
#include "train/checkpoint.h"
#include "train/reshard.h"
#include "train/weight_source.h"
#include "train/weights_export.h"
#include "test_errors.h"

using namespace mousse;
using mousse_test::error_of;
namespace fs = std::filesystem;

namespace {

const char* kModel = R"({"preset":"custom","n_layer":1,"n_head":2,"d_model":8,"vocab_size":16,)"
                     R"("padded_vocab":16,"max_seq_len":8,"rope_base":10000.0})";

json valid_meta() {
  return json::parse(std::string(R"({"step": 5, "data_position": 10, "world_size": 1,
    "optimizers": {"matrix": {"type": "adamw", "extra": {}}, "embedding": {"type": "lion"}},
    "config": {"model": )") + kModel + "}}");
}

// Every weight of the kModel model (so that the tensor set is right and only the metadata is
// under test), plus `key` = value in the header's metadata.
void write_with_meta(const std::string& path, const std::string& key, const std::string& value) {
  SafeTensorsWriter w;
  const ModelConfig cfg = model_config_from(ConfigNode(json::parse(kModel), "model", "test"));
  for (const ParamSpec& p : param_specs(cfg)) {
    const size_t n = size_t(p.rows * p.cols);
    w.add(p.name, DType::f32, Shape{p.rows, p.cols}, [n](void* dst) {
      std::vector<float> v(n, 0.25f);
      std::memcpy(dst, v.data(), n * 4);
    });
  }
  w.set_metadata(key, value);
  w.write_atomic(path);
}


}  // namespace

TEST_CASE("checkpoint metadata: every kind of corruption names the file and the field") {
  const fs::path dir = fs::temp_directory_path() / ("mousse_meta_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "ckpt_00000005.safetensors").string();
  const std::string out = (dir / "exported.safetensors").string();

  write_with_meta(path, "mousse", valid_meta().dump());
  CheckpointMeta m = read_checkpoint_meta(path);
  CHECK(m.step == 5);
  CHECK(m.data_position == 10);
  CHECK(WeightSource(path).model()->d_model == 8);
  export_safetensors(WeightSource(path), out, DType::f32, false);
  CHECK(SafeTensorsFile(out).metadata().at("step") == "5");
  fs::remove(out);

  // (metadata text, a word the error must contain besides the file name)
  auto set = [](const char* key, json v) {
    json j = valid_meta();
    j[key] = std::move(v);
    return j.dump();
  };
  auto drop = [](const char* key) {
    json j = valid_meta();
    j.erase(key);
    return j.dump();
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"step\": 5", "not valid JSON"},
      {"", "not valid JSON"},
      {std::string("{\"step\": 5}\0junk", 16), "NUL"},
      {"[1, 2]", "'mousse' must be a JSON object"},
      {"\"text\"", "'mousse' must be a JSON object"},
      {set("step", "ten"), "'mousse.step'"},
      {set("step", -1), "'mousse.step'"},
      {set("step", 2.5), "'mousse.step'"},
      {set("step", json(uint64_t(1) << 63)), "'mousse.step'"},
      {drop("step"), "'mousse.step': missing"},
      {set("data_position", -3), "'mousse.data_position'"},
      {drop("data_position"), "'mousse.data_position'"},
      {set("world_size", 0), "'mousse.world_size'"},
      {set("world_size", json(int64_t(1) << 32)), "'mousse.world_size'"},
      {set("optimizers", "adamw"), "'mousse.optimizers'"},
      {drop("optimizers"), "'mousse.optimizers'"},
      {set("optimizers", {{"matrix", 3}}), "'mousse.optimizers.matrix'"},
      {set("optimizers", {{"matrix", {{"extra", json::object()}}}}), "'mousse.optimizers.matrix.type'"},
      {set("optimizers", {{"matrix", {{"type", "adamw"}, {"extra", 7}}}}),
       "'mousse.optimizers.matrix.extra'"},
      {set("config", "x"), "'mousse.config'"},
      {drop("config"), "'mousse.config'"},
  };
  for (const auto& [text, word] : cases) {
    INFO("metadata: " << text);
    write_with_meta(path, "mousse", text);
    const std::string name = fs::path(path).filename().string();
    CHECK_THAT(error_of([&] { read_checkpoint_meta(path); }),
               Catch::Contains(name) && Catch::Contains(word));
    // `mousse export` refuses it and writes nothing.
    CHECK_THAT(error_of([&] { export_safetensors(WeightSource(path), out, DType::f32, false); }),
               Catch::Contains(name) && Catch::Contains(word));
    CHECK(!fs::exists(out));
    // `mousse sample` names the file too (it reads only config.model).
    CHECK_THAT(error_of([&] { WeightSource src(path); }), Catch::Contains(name));
  }
  // A model config inside the metadata is checked like a config file's, naming the file.
  json bad_model = valid_meta();
  bad_model["config"]["model"]["n_layer"] = 4294967298;
  write_with_meta(path, "mousse", bad_model.dump());
  CHECK_THAT(error_of([&] { WeightSource src(path); }),
             Catch::Contains("ckpt_00000005.safetensors") && Catch::Contains("'model.n_layer'"));

  // The per-rank optimizer shard's metadata.
  const std::string shard = checkpoint_shard_path(path, 1, 2);
  const std::vector<std::pair<std::string, std::string>> shard_cases = {
      {"{", "not valid JSON"},
      {"[]", "'mousse_shard' must be a JSON object"},
      {R"({"rank": 1, "world_size": "2", "step": 5, "optimizers": {}})", "'mousse_shard.world_size'"},
      {R"({"rank": 2, "world_size": 2, "step": 5, "optimizers": {}})", "'mousse_shard.rank'"},
      {R"({"rank": 1, "world_size": 2, "step": -5, "optimizers": {}})", "'mousse_shard.step'"},
      {R"({"rank": 1, "world_size": 2, "step": 5})", "'mousse_shard.optimizers'"},
      {R"({"rank": 1, "world_size": 2, "step": 5, "optimizers": 5})", "'mousse_shard.optimizers'"},
      {R"({"rank": 0, "world_size": 2, "step": 5, "optimizers": {}})", "expected rank 1 of 2"},
      {R"({"rank": 1, "world_size": 2, "step": 4, "optimizers": {}})", "at step 5"},
  };
  for (const auto& [text, word] : shard_cases) {
    INFO("shard metadata: " << text);
    write_with_meta(shard, "mousse_shard", text);
    CHECK_THAT(error_of([&] { read_shard_meta(shard, 1, 2, 5); }),
               Catch::Contains(fs::path(shard).filename().string()) && Catch::Contains(word));
  }
  write_with_meta(shard, "mousse_shard",
                  R"({"rank": 1, "world_size": 2, "step": 5, "optimizers": {"m": {}}})");
  CHECK(read_shard_meta(shard, 1, 2, 5).at("optimizers") == json{{"m", json::object()}});
  fs::remove_all(dir);
}
