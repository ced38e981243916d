// What a run does to its directories and files: atomic writes, the metrics log's failures and
// its atomic rewrite on resume, the run directory's lock, refusal, --overwrite and clean-up of
// killed writes, and the finiteness check before a checkpoint.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "backend/select.h"
#include "core/error.h"
#include "model/params.h"
#include "train/atomic_file.h"
#include "train/metrics.h"
#include "train/run_config.h"
#include "train/run_dir.h"
#include "train/state_check.h"
#include "test_errors.h"
#include "test_files.h"

using namespace mousse;
using mousse_test::error_of;
using mousse_test::slurp;
using mousse_test::TempDir;
namespace fs = std::filesystem;

namespace {

uint64_t fresh_seed() { return (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}(); }

void put(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

RunConfig run_config(const std::string& log_dir, const std::string& ckpt_dir = "") {
  RunConfig c;
  c.file = "cfg.json";
  c.log.dir = log_dir;
  c.checkpoint.dir = ckpt_dir.empty() ? log_dir + "/checkpoints" : ckpt_dir;
  return c;
}

RunDirOptions quiet(bool resume = false, bool overwrite = false) {
  RunDirOptions o;
  o.resume = resume;
  o.overwrite = overwrite;
  o.print = false;
  return o;
}

}  // namespace

TEST_CASE("write_file_atomic: replaces whole, and a failed write leaves the old file") {
  TempDir d;
  const std::string path = d.file("config.json");
  std::mt19937_64 rng(fresh_seed());
  std::string a(size_t(rng() % 100000 + 1), 'a'), b(size_t(rng() % 100000 + 1), 'b');
  write_file_atomic(path, a);
  CHECK(slurp(path) == a);
  write_file_atomic(path, b);
  CHECK(slurp(path) == b);
  // The temporary's name is taken by a directory: the write fails, naming the file, and the
  // file keeps its contents (an in-place rewrite would have truncated it first).
  fs::create_directories(temporary_path(path));
  CHECK_THAT(error_of([&] { write_file_atomic(path, a); }), Catch::Contains("config.json"));
  CHECK(slurp(path) == b);
  fs::remove(temporary_path(path));
  // The target itself is a directory: an error, nothing left behind.
  fs::create_directories(d.file("dir.json"));
  CHECK_THAT(error_of([&] { write_file_atomic(d.file("dir.json"), a); }), Catch::Contains("dir.json"));
  CHECK(!fs::exists(temporary_path(d.file("dir.json"))));
}

TEST_CASE("metrics log: a failed write ends the run with an error naming the file") {
  TempDir d;
  fs::create_symlink("/dev/full", d.file("metrics.jsonl"));
  MetricsLog log(d.path, -1);
  const std::string e = error_of([&] { log.write({{"type", "train"}, {"step", 1}}); });
  CHECK_THAT(e, Catch::Contains("metrics.jsonl") && Catch::Contains("No space left on device"));
}

TEST_CASE("metrics log: resume keeps the records up to the step, replacing the file atomically") {
  TempDir d;
  std::mt19937_64 rng(fresh_seed());
  const int64_t steps = int64_t(rng() % 50) + 5, keep = int64_t(rng() % uint64_t(steps));
  std::string text, expect;
  for (int64_t s = 0; s <= steps; s++) {
    const std::string line = json{{"type", "train"}, {"step", s}, {"loss", double(rng() % 1000) / 7}}.dump();
    text += line + "\n";
    if (s <= keep) expect += line + "\n";
  }
  text += "{\"type\":\"train\",\"st";  // cut by a crash
  put(d.file("metrics.jsonl"), text);
  // The rewrite cannot happen (its temporary is blocked): the log stays whole.
  fs::create_directories(temporary_path(d.file("metrics.jsonl")));
  CHECK_THAT(error_of([&] { MetricsLog log(d.path, keep); }), Catch::Contains("metrics.jsonl"));
  CHECK(slurp(d.file("metrics.jsonl")) == text);
  fs::remove(temporary_path(d.file("metrics.jsonl")));
  // A hard link to the old file keeps the old contents: the file was replaced, not rewritten.
  fs::create_hard_link(d.file("metrics.jsonl"), d.file("old.jsonl"));
  {
    MetricsLog log(d.path, keep);
    log.write({{"type", "run"}, {"step", keep}});
    log.close();
  }
  CHECK(slurp(d.file("metrics.jsonl")) == expect + json{{"type", "run"}, {"step", keep}}.dump() + "\n");
  CHECK(slurp(d.file("old.jsonl")) == text);
}

TEST_CASE("run directory: writable, locked, never clobbered without --overwrite") {
  TempDir d;
  const std::string log = d.file("run"), ckpt = d.file("run/checkpoints");
  {
    RunDirectories first(run_config(log), quiet());
    CHECK(fs::is_directory(ckpt));
    // A second claim while the first holds the run: refused with our pid, even with --resume,
    // and for another log.dir that shares the checkpoint directory.
    const std::string pid = "pid " + std::to_string(::getpid());
    CHECK_THAT(error_of([&] { RunDirectories(run_config(log), quiet(true)); }),
               Catch::Contains("log.dir " + log + " is in use") && Catch::Contains(pid));
    CHECK_THAT(error_of([&] { RunDirectories(run_config(d.file("other"), ckpt), quiet()); }),
               Catch::Contains("checkpoint.dir " + ckpt + " is in use") && Catch::Contains(pid));
  }
  // Released: a fresh start in the (still empty) directory works.
  { RunDirectories again(run_config(log), quiet()); }

  // The directory holds a run: a log with records and checkpoints, and a file of the user's.
  put(log + "/metrics.jsonl", "{\"type\":\"run\",\"step\":0}\n");
  put(log + "/config.json", "{}\n");
  put(ckpt + "/ckpt_00000004.safetensors", "old");
  put(ckpt + "/ckpt_00000004.rank1-of-2.safetensors", "old");
  put(log + "/notes.txt", "mine");
  const std::string e = error_of([&] { RunDirectories(run_config(log), quiet()); });
  CHECK_THAT(e, Catch::Contains("already holds a run") && Catch::Contains("--resume") &&
                    Catch::Contains("--overwrite") && Catch::Contains("metrics.jsonl"));
  CHECK(slurp(log + "/metrics.jsonl") == "{\"type\":\"run\",\"step\":0}\n");  // untouched
  CHECK(fs::exists(ckpt + "/ckpt_00000004.safetensors"));
  // Checkpoints alone (no log) are a run too.
  fs::remove(log + "/metrics.jsonl");
  CHECK_THAT(error_of([&] { RunDirectories(run_config(log), quiet()); }),
             Catch::Contains("checkpoint.dir " + ckpt) && Catch::Contains("ckpt_00000004"));
  put(log + "/metrics.jsonl", "{\"type\":\"run\",\"step\":0}\n");
  // --resume and --overwrite together are refused.
  CHECK_THAT(error_of([&] { RunDirectories(run_config(log), quiet(true, true)); }),
             Catch::Contains("--overwrite"));
  // --resume leaves the run alone.
  { RunDirectories resume(run_config(log), quiet(true)); }
  CHECK(fs::exists(log + "/metrics.jsonl"));
  // --overwrite deletes the earlier run's files, and only those.
  { RunDirectories over(run_config(log), quiet(false, true)); }
  CHECK(!fs::exists(log + "/metrics.jsonl"));
  CHECK(!fs::exists(log + "/config.json"));
  CHECK(!fs::exists(ckpt + "/ckpt_00000004.safetensors"));
  CHECK(!fs::exists(ckpt + "/ckpt_00000004.rank1-of-2.safetensors"));
  CHECK(slurp(log + "/notes.txt") == "mine");
  // An empty log (a run killed before its first record) is not a run.
  put(log + "/metrics.jsonl", "");
  { RunDirectories empty(run_config(log), quiet()); }
  // The config the run reads must not be where it writes its resolved config.
  RunConfig self = run_config(log);
  self.file = log + "/config.json";
  put(self.file, "{}");
  CHECK_THAT(error_of([&] { RunDirectories(self, quiet(true)); }),
             Catch::Contains("holds the config this run reads"));
}

TEST_CASE("run directory: temporaries of killed writes are removed at start, nothing else") {
  TempDir d;
  const std::string log = d.file("run"), ckpt = d.file("ckpts");
  fs::create_directories(log);
  fs::create_directories(ckpt);
  std::mt19937_64 rng(fresh_seed());
  const std::string pid = std::to_string(rng() % 4000000 + 1);
  const std::vector<std::string> stale_ckpt = {"ckpt_00000012.safetensors.tmp." + pid,
                                               "ckpt_00000012.rank3-of-4.safetensors.tmp.7"};
  const std::vector<std::string> stale_log = {"metrics.jsonl.tmp." + pid, "config.json.tmp.1"};
  const std::vector<std::string> kept = {"ckpt_00000012.safetensors.tmp.x", "my.safetensors.tmp.3",
                                         "xckpt_00000001.safetensors.tmp.3", "notes.tmp.4",
                                         "ckpt_00000012.safetensors.tmp.12.bak"};
  for (auto& n : stale_ckpt) put(ckpt + "/" + n, "partial");
  for (auto& n : stale_log) put(log + "/" + n, "partial");
  for (auto& n : kept) {
    put(ckpt + "/" + n, "user");
    put(log + "/" + n, "user");
  }
  { RunDirectories dirs(run_config(log, ckpt), quiet(true)); }
  for (auto& n : stale_ckpt) CHECK(!fs::exists(ckpt + "/" + n));
  for (auto& n : stale_log) CHECK(!fs::exists(log + "/" + n));
  for (auto& n : kept) {
    CHECK(fs::exists(ckpt + "/" + n));
    CHECK(fs::exists(log + "/" + n));
  }
  // A temporary alone is no run: a fresh start goes ahead and removes it.
  put(ckpt + "/" + stale_ckpt[0], "partial");
  { RunDirectories fresh(run_config(log, ckpt), quiet()); }
  CHECK(!fs::exists(ckpt + "/" + stale_ckpt[0]));
}

TEST_CASE("run directory: one that cannot take a file is an error naming the key") {
  TempDir d;
  put(d.file("file"), "x");
  CHECK_THAT(error_of([&] { check_writable_directory(d.file("file/sub"), "checkpoint.dir"); }),
             Catch::Contains("checkpoint.dir " + d.file("file/sub")) && Catch::Contains("cannot create"));
  // /proc exists and takes no new file, even for root.
  CHECK_THAT(error_of([&] { check_writable_directory("/proc", "log.dir"); }),
             Catch::Contains("log.dir /proc") && Catch::Contains("cannot create a file"));
  CHECK_THAT(error_of([&] { RunDirectories(run_config(d.path, "/proc"), quiet()); }),
             Catch::Contains("checkpoint.dir /proc"));
  if (::geteuid() != 0) {  // permissions bind only non-root users
    fs::create_directories(d.file("ro"));
    fs::permissions(d.file("ro"), fs::perms::owner_read | fs::perms::owner_exec);
    CHECK_THAT(error_of([&] { check_writable_directory(d.file("ro"), "log.dir"); }),
               Catch::Contains("log.dir " + d.file("ro")));
    fs::permissions(d.file("ro"), fs::perms::owner_all);
  }
  CHECK_NOTHROW(check_writable_directory(d.file("new/deep"), "log.dir"));
  CHECK(fs::is_empty(d.file("new/deep")));  // the probe is gone
}

TEST_CASE("state check: the first non-finite weight or optimizer state tensor is named") {
  auto ops = make_ops("cpu");
  Arena arena(*ops);
  ModelConfig mc;
  mc.n_layer = 2;
  mc.n_head = 2;
  mc.d_model = 32;
  mc.vocab_size = 300;
  mc.padded_vocab = 384;
  mc.max_seq_len = 16;
  ParamTable params(mc, Precision{}, arena);
  std::vector<Tensor> state(3);
  arena.reserve(state[0], "optimizer", "opt.a", DType::f32, Shape{7, 5});
  arena.reserve(state[1], "optimizer", "opt.b", DType::f64, Shape{11});
  arena.reserve(state[2], "optimizer", "opt.order", DType::i32, Shape{4});
  Tensor scratch;
  arena.reserve(scratch, "optimizer_scratch", "scratch", DType::f32, Shape{9});
  arena.allocate();
  params.bind();
  std::mt19937_64 rng(fresh_seed());
  std::normal_distribution<float> nd;
  std::vector<float> w(size_t(params.flat_weights().numel()));
  for (float& v : w) v = nd(rng);
  ops->from_host(params.flat_weights(), w.data());
  std::vector<float> a(35);
  for (float& v : a) v = nd(rng);
  ops->from_host(state[0], a.data());
  std::vector<double> b(11, 0.5);
  ops->from_host(state[1], b.data());
  ops->fill(scratch, double(NAN));  // scratch is not state: never checked
  CHECK(first_non_finite(*ops, params, arena, true) == "");

  for (double bad : {double(NAN), double(INFINITY), -double(INFINITY)}) {
    // One element of a random parameter.
    const Param& p = params.params()[size_t(rng() % params.params().size())];
    std::vector<float> w2 = w;
    w2[size_t(p.offset + int64_t(rng() % uint64_t(p.weight.numel())))] = float(bad);
    ops->from_host(params.flat_weights(), w2.data());
    CHECK(first_non_finite(*ops, params, arena, true) == "weight tensor " + p.name);
    CHECK(first_non_finite(*ops, params, arena, false) == "");  // weights not asked
    ops->from_host(params.flat_weights(), w.data());
    // One element of the optimizer state.
    std::vector<double> b2 = b;
    b2[size_t(rng() % b2.size())] = bad;
    ops->from_host(state[1], b2.data());
    CHECK(first_non_finite(*ops, params, arena, false) == "optimizer state tensor opt.b");
    ops->from_host(state[1], b.data());
  }
  // Large but finite values are finite.
  std::vector<float> big = w;
  for (float& v : big) v *= 1e30f;
  ops->from_host(params.flat_weights(), big.data());
  CHECK(first_non_finite(*ops, params, arena, true) == "");
}
