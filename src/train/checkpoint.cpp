#include "train/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/safetensors.h"
#include "train/weight_source.h"

namespace mousse {

namespace fs = std::filesystem;

namespace {
const char* kPrefix = "ckpt_";
const char* kSuffix = ".safetensors";
const std::string kOptim = "optimizer/";

// Steps of the complete checkpoints in dir, ascending.
std::vector<int64_t> checkpoint_steps(const std::string& dir) {
  std::vector<int64_t> steps;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return steps;
  for (auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind(kPrefix, 0) != 0 || n.size() <= 5 + 12) continue;
    if (n.substr(n.size() - 12) != kSuffix) continue;
    std::string digits = n.substr(5, n.size() - 5 - 12);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    steps.push_back(std::stoll(digits));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}
}  // namespace

std::string checkpoint_path(const std::string& dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "%s%08lld%s", kPrefix, (long long)step, kSuffix);
  return (fs::path(dir) / name).string();
}

void save_checkpoint(const std::string& dir, int keep, const CheckpointMeta& meta, Ops& ops,
                     const ParamTable& params, const Arena& arena, bool with_optimizer_state) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create checkpoint directory ", dir, ": ", ec.message());
  SafeTensorsWriter w;
  for (const Param& p : params.params())
    w.add(p.name, p.weight.dtype, p.weight.shape,
          [&ops, t = p.weight](void* dst) { ops.to_host(dst, t); });
  for (const Arena::Entry& e : arena.entries()) {
    if (e.category != "optimizer" || !with_optimizer_state) continue;
    w.add(kOptim + e.name, e.target->dtype, e.target->shape,
          [&ops, t = *e.target](void* dst) { ops.to_host(dst, t); });
  }
  json m = {{"step", meta.step},
            {"data_position", meta.data_position},
            {"data_batches", meta.data_batches},
            {"world_size", meta.world_size},
            {"optimizers", meta.optimizers},
            {"config", meta.config}};
  w.set_metadata("format", "mousse-checkpoint-1");
  w.set_metadata("mousse", m.dump());
  w.write_atomic(checkpoint_path(dir, meta.step));
  auto steps = checkpoint_steps(dir);
  for (size_t i = 0; i + size_t(keep) < steps.size(); i++) {
    const std::string main = checkpoint_path(dir, steps[i]);
    fs::remove(main, ec);
    // its per-rank optimizer shards: <main without suffix>.rank*
    const std::string stem = fs::path(main).filename().string();
    const std::string prefix = stem.substr(0, stem.size() - std::string(kSuffix).size()) + ".rank";
    for (auto& e : fs::directory_iterator(dir, ec))
      if (e.path().filename().string().rfind(prefix, 0) == 0) fs::remove(e.path(), ec);
  }
}

std::string checkpoint_shard_path(const std::string& main_path, int rank, int world) {
  const std::string suffix = kSuffix;
  MOUSSE_CHECK(main_path.size() > suffix.size(), "bad checkpoint path ", main_path);
  return main_path.substr(0, main_path.size() - suffix.size()) + ".rank" + std::to_string(rank) +
         "-of-" + std::to_string(world) + suffix;
}

void save_checkpoint_shard(const std::string& dir, int64_t step, int rank, int world,
                           const json& plan, const json& layout, const json& optimizers, Ops& ops,
                           const Arena& arena) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create checkpoint directory ", dir, ": ", ec.message());
  SafeTensorsWriter w;
  for (const Arena::Entry& e : arena.entries()) {
    if (e.category != "optimizer") continue;
    w.add(kOptim + e.name, e.target->dtype, e.target->shape,
          [&ops, t = *e.target](void* dst) { ops.to_host(dst, t); });
  }
  json m = {{"step", step}, {"rank", rank}, {"world_size", world}, {"plan", plan},
            {"layout", layout}, {"optimizers", optimizers}};
  w.set_metadata("format", "mousse-checkpoint-shard-1");
  w.set_metadata("mousse_shard", m.dump());
  w.write_atomic(checkpoint_shard_path(checkpoint_path(dir, step), rank, world));
}

std::string latest_checkpoint(const std::string& dir) {
  auto steps = checkpoint_steps(dir);
  return steps.empty() ? "" : checkpoint_path(dir, steps.back());
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  SafeTensorsFile f(path);
  const json j = f.metadata_json("mousse");
  if (j.is_null())
    fail(path, ": not a mousse checkpoint (no 'mousse' metadata); to start from plain weights ",
         "use the config key init_from instead of --resume");
  // Typed, range-checked reads: corrupt metadata is an error naming the file and the field
  // ("ckpt_00000010.safetensors: key 'mousse.step': expected an integer in [0, 2^62], ...").
  const ConfigNode meta(j, "mousse", path);
  CheckpointMeta m;
  m.step = meta.integer("step", {0, kMaxCount});
  m.data_position = meta.integer("data_position", {0, kMaxCount});
  m.world_size = int(meta.integer("world_size", {1, kMaxInt32}));
  const ConfigNode optimizers = meta.child("optimizers", true);
  for (auto& [group, unused] : optimizers.raw().items()) {  // {"type": ..., "extra": {...}}
    const ConfigNode g = optimizers.child(group, true);
    g.string("type");
    g.child("extra");
  }
  // (checkpoints written before resharding existed store the position per rank only)
  m.data_batches = j.contains("data_batches") ? meta.integer("data_batches", {0, kMaxCount})
                                              : m.data_position * m.world_size;
  m.optimizers = optimizers.raw();
  m.config = meta.child("config", true).raw();
  return m;
}

void load_weights(const std::string& path, Ops& ops, ParamTable& params) {
  WeightSource(path).load(ops, params);
}

}  // namespace mousse
