#include "train/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/safetensors.h"

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

static void read_into_tensor(const SafeTensorsFile& f, const std::string& name, Ops& ops,
                             const Tensor& t);

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
                           const json& plan, const json& optimizers, Ops& ops,
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
            {"optimizers", optimizers}};
  w.set_metadata("format", "mousse-checkpoint-shard-1");
  w.set_metadata("mousse_shard", m.dump());
  w.write_atomic(checkpoint_shard_path(checkpoint_path(dir, step), rank, world));
}

json load_checkpoint_shard(const std::string& main_path, int rank, int world, const json& plan,
                           Ops& ops, const Arena& arena) {
  const std::string path = checkpoint_shard_path(main_path, rank, world);
  std::error_code ec;
  if (!fs::exists(path, ec))
    fail(main_path, ": the optimizer shard of rank ", rank, " of ", world, " (", path,
         ") is missing; resume with the number of ranks the checkpoint was written with");
  SafeTensorsFile f(path);
  const json m = f.metadata_json("mousse_shard");
  if (m.is_null()) fail(path, ": not a mousse checkpoint shard");
  // Typed reads: corrupt metadata is an error naming the file and the field.
  const ConfigNode meta(m, "mousse_shard", path);
  const int64_t m_world = meta.integer("world_size", {1, kMaxInt32});
  const int64_t m_rank = meta.integer("rank", {0, m_world - 1});
  if (m_world != world || m_rank != rank)
    fail(path, ": written by rank ", m_rank, " of ", m_world, " ranks, this is rank ", rank,
         " of ", world);
  const json optimizers = meta.child("optimizers", true).raw();
  if (m.value("plan", json()) != plan)
    fail(path, ": the matrix ownership it was written with differs from this run's (the ",
         "optimizer configuration changed); resume with the config it was made with");
  for (const Arena::Entry& e : arena.entries()) {
    if (e.category != "optimizer") continue;
    if (!f.find(kOptim + e.name))
      fail(path, ": has no optimizer state '", e.name, "': it was written with a different ",
           "optimizer configuration; resume with the config it was made with");
    read_into_tensor(f, kOptim + e.name, ops, *e.target);
  }
  return optimizers;
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
  m.optimizers = optimizers.raw();
  m.config = meta.child("config", true).raw();
  return m;
}

static void read_into(const SafeTensorsFile& f, const std::string& name, Ops& ops,
                      const Tensor& t) {
  std::vector<char> host(t.bytes());
  f.read(name, t.dtype, t.shape, host.data());
  ops.from_host(t, host.data());
}

static void read_into_tensor(const SafeTensorsFile& f, const std::string& name, Ops& ops,
                             const Tensor& t) {
  read_into(f, name, ops, t);
}

void load_checkpoint(const std::string& path, Ops& ops, ParamTable& params, const Arena& arena) {
  SafeTensorsFile f(path);
  for (Param& p : params.params()) read_into(f, p.name, ops, p.weight);
  size_t n_optim = 0;
  for (const Arena::Entry& e : arena.entries()) {
    if (e.category != "optimizer") continue;
    n_optim++;
    if (!f.find(kOptim + e.name))
      fail(path, ": has no optimizer state '", e.name, "': it was written with a different ",
           "optimizer configuration; resume with the config it was made with");
    read_into(f, kOptim + e.name, ops, *e.target);
  }
  size_t in_file = 0;
  for (auto& e : f.entries()) in_file += e.name.rfind(kOptim, 0) == 0;
  if (in_file != n_optim)
    fail(path, ": holds ", in_file, " optimizer state tensors but this run has ", n_optim,
         ": it was written with a different optimizer configuration");
}

void load_weights(const std::string& path, Ops& ops, ParamTable& params) {
  SafeTensorsFile f(path);
  for (Param& p : params.params()) {
    if (!f.find(p.name))
      fail(path, ": no tensor '", p.name, "' (expected the canonical names of design §2: ",
           "wte, lm_head, blocks.{i}.attn.{q,k,v,o}, blocks.{i}.mlp.{fc,proj})");
    read_into(f, p.name, ops, p.weight);
  }
}

void export_weights(const std::string& checkpoint, const std::string& out) {
  SafeTensorsFile f(checkpoint);
  SafeTensorsWriter w;
  size_t n = 0;
  for (auto& e : f.entries()) {
    if (e.name.rfind(kOptim, 0) == 0) continue;
    w.add(e.name, DType::f32, e.shape, [&f, e](void* dst) { f.read(e.name, DType::f32, e.shape, dst); });
    n++;
  }
  if (n == 0) fail(checkpoint, ": holds no weights to export");
  if (f.metadata().count("mousse")) {  // a checkpoint (else a file `export` wrote)
    const CheckpointMeta meta = read_checkpoint_meta(checkpoint);
    if (meta.config.contains("model")) w.set_metadata("model", meta.config["model"].dump());
    w.set_metadata("step", std::to_string(meta.step));
  }
  w.set_metadata("format", "pt");
  w.write_atomic(out);
}

}  // namespace mousse
