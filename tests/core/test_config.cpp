// Config values (src/core/json_config.h): every numeric read checks the key's range and never
// wraps, truncates or rounds; the messages name the file, the key, the range and the value.
// The run config's keys (src/train/run_config.cpp and the sections it reads) are checked key by
// key: each one rejects values just outside its range and accepts its bounds.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include "backend/select.h"
#include "core/arena.h"

#include "core/json_config.h"
#include "model/params.h"
#include "train/memory_plan.h"
#include "train/param_groups.h"
#include "train/run_config.h"
#include "test_errors.h"
#include "test_files.h"

using namespace mousse;
using mousse_test::error_of;

namespace {

json toy_config() {
  return json::parse(R"({
    "model": {"preset": "custom", "n_layer": 2, "n_head": 2, "d_model": 32, "max_seq_len": 64,
              "vocab_size": 300, "padded_vocab": 384},
    "data": {"train": "x_*.bin"},
    "batch": {"global_tokens": 512, "micro_batch": 4, "seq_len": 64},
    "optimizer": {"matrix": {"type": "mousse", "lr": 1e-3},
                  "embedding": {"type": "adamw", "lr": 1e-4},
                  "lm_head": {"type": "lion", "lr": 1e-4}},
    "steps": 10
  })");
}

// Parses the run config and builds its optimizers (as `mousse config` does).
void parse_all(const json& j) {
  RunConfig rc = parse_run_config(j, "cfg.json");
  auto ops = make_ops("cpu");
  Arena arena(*ops);
  ParamTable table(rc.model, Precision{}, arena);
  make_optimizer_setup(rc.optimizer, rc.file, table);
}

std::string parse_error(const json& j) {
  return error_of([&] { parse_all(j); });
}

// j with the value at a dotted key path set.
json with(json j, const std::string& path, const json& v) {
  apply_overrides(j, {path + "=" + v.dump()}, "cfg.json");
  return j;
}

}  // namespace

TEST_CASE("config: integers are range-checked, never wrapped or rounded") {
  const json j = json::parse(R"({
    "small": 5, "neg": -7, "big": 4294967298, "huge": 18446744073709551615, "beyond": 1e30,
    "half": 1.5, "whole": 1e6, "inexact": 9007199254740993.0, "str": "5", "null": null,
    "bool": true, "arr": [5], "max": 9223372036854775807, "min": -9223372036854775808
  })");
  ConfigNode n(j, "sec", "f.json");
  const IntRange any{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
  CHECK(n.integer("small", {1, 10}) == 5);
  CHECK(n.integer("neg", {-10, 0}) == -7);
  CHECK(n.integer("whole", {1, kMaxCount}) == 1000000);  // a whole-valued literal
  CHECK(n.integer("max", any) == std::numeric_limits<int64_t>::max());
  CHECK(n.integer("min", any) == std::numeric_limits<int64_t>::min());
  CHECK(n.integer("absent", 42, {1, 10}) == 42);  // defaults are the code's, not checked
  CHECK(n.integer("null", 3, {1, 10}) == 3);       // null is "not given"
  auto err = [&](const std::string& key, IntRange r) {
    return error_of([&] { n.integer(key, r); });
  };
  CHECK(err("small", {6, 10}) == "f.json: key 'sec.small': expected an integer in [6, 10], got 5");
  CHECK(err("neg", {0, kMaxCount}) ==
        "f.json: key 'sec.neg': expected an integer in [0, 2^62], got -7");
  CHECK(err("big", {1, kMaxInt32}) ==
        "f.json: key 'sec.big': expected an integer in [1, 2^31 - 1], got 4294967298");
  for (const char* key : {"huge", "beyond", "half", "inexact", "str", "bool", "arr"})
    CHECK_THAT(err(key, any), Catch::StartsWith(std::string("f.json: key 'sec.") + key +
                                                "': expected an integer in [-2^63, 2^63 - 1], got "));
  CHECK(err("absent", {1, 2}) == "f.json: key 'sec.absent': missing; expected an integer in [1, 2]");
  CHECK_THAT(err("null", {1, 2}), Catch::EndsWith("got null"));
}

TEST_CASE("config: integer ranges hold at their bounds for random ranges and values") {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 2000; trial++) {
    // Bounds anywhere in int64, values at, just inside and just outside them.
    int64_t lo = int64_t(rng()), hi = int64_t(rng());
    if (trial % 3 == 0) lo = -int64_t(rng() % 1000), hi = int64_t(rng() % 1000);
    if (lo > hi) std::swap(lo, hi);
    for (int64_t v : {lo, hi, lo + 1, hi - 1}) {
      json j = {{"k", v}};
      CHECK(ConfigNode(j, "", "f.json").integer("k", {lo, hi}) == v);
    }
    if (lo > std::numeric_limits<int64_t>::min()) {
      json j = {{"k", lo - 1}};
      CHECK_THROWS_AS(ConfigNode(j, "", "f.json").integer("k", {lo, hi}), Error);
    }
    if (hi < std::numeric_limits<int64_t>::max()) {
      json j = {{"k", hi + 1}};
      CHECK_THROWS_AS(ConfigNode(j, "", "f.json").integer("k", {lo, hi}), Error);
    }
  }
}

TEST_CASE("config: numbers are finite and inside open or closed bounds") {
  const json j = json::parse(R"({"zero": 0, "one": 1, "neg": -1e-300, "big": 1.7e308, "s": "1",
                                 "list": [0.9, 0.999], "badlist": [0.9, 1.0], "mixed": [0.5, "x"]})");
  ConfigNode n(j, "opt", "f.json");
  CHECK(n.number("zero", NumRange::at_least(0)) == 0);
  CHECK(n.number("one", NumRange::closed(0, 1)) == 1);
  CHECK(n.number("big", NumRange::above(0)) == 1.7e308);
  auto err = [&](const std::string& key, NumRange r) {
    return error_of([&] { n.number(key, r); });
  };
  CHECK(err("zero", NumRange::above(0)) == "f.json: key 'opt.zero': expected a number in (0, inf), got 0");
  CHECK(err("one", NumRange::right_open(0, 1)) == "f.json: key 'opt.one': expected a number in [0, 1), got 1");
  CHECK_THAT(err("neg", NumRange::at_least(0)), Catch::Contains("[0, inf), got -1e-300"));
  CHECK_THAT(err("s", NumRange::at_least(0)), Catch::Contains("got \"1\""));
  CHECK(n.numbers("list", {}, NumRange::right_open(0, 1)) == std::vector<double>{0.9, 0.999});
  CHECK_THAT(error_of([&] { n.numbers("badlist", {}, NumRange::right_open(0, 1)); }),
             Catch::Contains("'opt.badlist': expected an array of numbers in [0, 1), got [0.9,1.0]"));
  CHECK_THAT(error_of([&] { n.numbers("mixed", {}, NumRange::right_open(0, 1)); }),
             Catch::Contains("'opt.mixed'"));
  CHECK(format_int_bound(int64_t(1) << 62) == "2^62");
  CHECK(format_int_bound((int64_t(1) << 31) - 1) == "2^31 - 1");
  CHECK(format_int_bound(-(int64_t(1) << 40)) == "-2^40");
  CHECK(format_int_bound(1000) == "1000");
}

TEST_CASE("config: an option enum is read through its table of names, every name and the default") {
  enum class Colour { red, green, blue };
  const Named<Colour> colours[] = {{"red", Colour::red}, {"green", Colour::green},
                                   {"blue", Colour::blue}};
  // every name, in random order of keys, maps to its own value; an absent key to the default
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 20; trial++) {
    const Named<Colour>& pick = colours[rng() % 3];
    const Colour def = colours[rng() % 3].value;
    ConfigNode n(json{{"c", pick.name}}, "opt", "f.json");
    CHECK(n.choice("c", def, colours) == pick.value);
    CHECK(n.choice("absent", def, colours) == def);
    CHECK(std::string(choice_name(colours, pick.value)) == pick.name);
  }
  ConfigNode bad(json{{"c", "Red"}, {"n", 3}}, "opt", "f.json");
  CHECK(error_of([&] { bad.choice("c", Colour::red, colours); }) ==
        "f.json: key 'opt.c': 'Red' is not one of: red, green, blue");
  CHECK_THAT(error_of([&] { bad.choice("n", Colour::red, colours); }), Catch::Contains("'opt.n'"));
}

TEST_CASE("config: every numeric key of the run config rejects values outside its range") {
  REQUIRE(parse_error(toy_config()).empty());
  // key, the smallest and largest accepted values (null: unbounded), and a non-number.
  struct Key { const char* path; json lo, hi; bool integer; };
  const Key keys[] = {
      {"model.n_layer", 1, 65536, true},
      {"model.n_head", 1, 65536, true},
      {"model.d_model", 2, 1048576, true},
      {"model.vocab_size", 2, json(), true},         // upper bound: padded_vocab (a relation)
      {"model.padded_vocab", json(), 2147483647, true},
      {"model.max_seq_len", json(), 16777216, true},  // (below 64: batch.seq_len's error)
      {"model.rope_base", json(), json(), false},
      {"data.prefetch", 1, 1024, true},
      {"batch.micro_batch", 1, 2147483647, true},
      {"batch.seq_len", 1, 64, true},
      {"batch.global_tokens", 256, json(), true},
      {"steps", 1, json(), true},
      {"eval.every", 0, 4611686018427387904, true},
      {"eval.tokens", 0, 4611686018427387904, true},
      {"log.every", 1, 4611686018427387904, true},
      {"log.diagnostics_every", 0, 4611686018427387904, true},
      {"checkpoint.every", 0, 4611686018427387904, true},
      {"checkpoint.keep", 1, 2147483647, true},
      {"seed", 0, 9223372036854775807, true},
      {"schedule.warmup", 0, 1, false},
      {"schedule.min_ratio", 0, 1, false},
      {"optimizer.grad_clip", 0, json(), false},
      {"optimizer.lm_head_lr_scale", json(), json(), false},
      {"optimizer.matrix.lr", 0, json(), false},
      {"optimizer.matrix.lr_scale", json(), json(), false},
      {"optimizer.matrix.momentum", 0, json(), false},
      {"optimizer.matrix.beta_pc", 0, json(), false},
      {"optimizer.matrix.eps", json(), json(), false},
      {"optimizer.matrix.alpha", 0, 1, false},
      {"optimizer.matrix.update_interval", 1, 4611686018427387904, true},
      {"optimizer.matrix.weight_decay", 0, json(), false},
      {"optimizer.matrix.ns_steps", 1, 100, true},
      {"optimizer.embedding.eps", json(), json(), false},
      {"optimizer.embedding.weight_decay", 0, json(), false},
      {"optimizer.lm_head.weight_decay", 0, json(), false},
  };
  for (const Key& k : keys) {
    INFO("key " << k.path);
    const std::string name = std::string("'") + k.path + "'";
    // Values of the wrong kind.
    for (const json& v : {json("3"), json(nullptr), json::array({1}), json(true)}) {
      if (v.is_null()) continue;  // null means "absent"
      CHECK_THAT(parse_error(with(toy_config(), k.path, v)), Catch::Contains(name));
    }
    if (k.integer) {
      CHECK_THAT(parse_error(with(toy_config(), k.path, 1.5)),
                 Catch::Contains(name) && Catch::Contains("an integer in"));
      CHECK_THAT(parse_error(with(toy_config(), k.path, json(uint64_t(1) << 63))),
                 Catch::Contains(name));
      CHECK_THAT(parse_error(with(toy_config(), k.path, -1)), Catch::Contains(name));
    }
    // The bounds are accepted (unless another key's relation forbids it), one step past is not.
    if (!k.lo.is_null()) {
      json below = k.integer ? json(k.lo.get<int64_t>() - 1) : json(k.lo.get<double>() - 1e-9);
      CHECK_THAT(parse_error(with(toy_config(), k.path, below)), Catch::Contains(name));
    }
    if (!k.hi.is_null()) {
      json above = !k.integer ? json(k.hi.get<double>() + 1e-9)
                   : k.hi.get<int64_t>() == std::numeric_limits<int64_t>::max()
                       ? json(uint64_t(k.hi.get<int64_t>()) + 1)
                       : json(k.hi.get<int64_t>() + 1);
      CHECK_THAT(parse_error(with(toy_config(), k.path, above)), Catch::Contains(name));
    }
  }
  // Open bounds and relations between keys.
  CHECK_THAT(parse_error(with(toy_config(), "model.max_seq_len", 0)),
             Catch::Contains("'model.max_seq_len': expected an integer in [1, 2^24], got 0"));
  CHECK_THAT(parse_error(with(with(toy_config(), "schedule.type", "wsd"), "schedule.decay", 1.5)),
             Catch::Contains("'schedule.decay': expected a number in [0, 1], got 1.5"));
  CHECK_THAT(parse_error(with(toy_config(), "model.rope_base", 1)), Catch::Contains("(1, inf)"));
  CHECK_THAT(parse_error(with(toy_config(), "optimizer.matrix.eps", 0)), Catch::Contains("(0, inf)"));
  CHECK_THAT(parse_error(with(toy_config(), "optimizer.matrix.momentum", 1)), Catch::Contains("[0, 1)"));
  CHECK_THAT(parse_error(with(toy_config(), "optimizer.matrix.lr_scale", 0)), Catch::Contains("(0, inf)"));
  CHECK_THAT(parse_error(with(toy_config(), "optimizer.embedding.betas", json::array({0.9, 1.0}))),
             Catch::Contains("'optimizer.embedding.betas'") && Catch::Contains("[0, 1)"));
  CHECK_THAT(parse_error(with(toy_config(), "optimizer.matrix.refresh_overlap", 11)),
             Catch::Contains("'optimizer.matrix.refresh_overlap': expected an integer in [0, 10]"));
  CHECK_THAT(parse_error(with(toy_config(), "batch.seq_len", 65)),
             Catch::Contains("'batch.seq_len': 65 exceeds model.max_seq_len = 64"));
  CHECK_THAT(parse_error(with(toy_config(), "model.vocab_size", 385)),
             Catch::Contains("'model.padded_vocab'"));
  CHECK_THAT(parse_error(with(toy_config(), "batch.global_tokens", 640)),
             Catch::Contains("'batch.global_tokens'") && Catch::Contains("multiple"));
  CHECK_THAT(parse_error(with(toy_config(), "batch.global_tokens", 0)),
             Catch::Contains("'batch.global_tokens': expected an integer in [1, 2^62], got 0"));
  CHECK_THAT(parse_error(with(toy_config(), "batch.global_tokens", -256)),
             Catch::Contains("'batch.global_tokens': expected an integer in [1, 2^62], got -256"));
  CHECK_THAT(parse_error(with(toy_config(), "model.n_layer", 4294967298)),
             Catch::Contains("'model.n_layer': expected an integer in [1, 2^16], got 4294967298"));
  // The tokens of the whole run fit int64.
  CHECK_THAT(parse_error(with(toy_config(), "steps", int64_t(1) << 62)),
             Catch::Contains("'steps'") && Catch::Contains("2^62 tokens"));
  CHECK(parse_error(with(toy_config(), "steps", (int64_t(1) << 62) / 512)).empty());
}

TEST_CASE("config: --set values beyond a double are a clean error naming the key") {
  json j = toy_config();
  for (const char* v : {"1e400", "-1e400", "1E+999"}) {
    const std::string err = error_of([&] { apply_overrides(j, {std::string("steps=") + v}, "cfg.json"); });
    CHECK_THAT(err, Catch::Contains("--set 'steps=") && Catch::Contains("key 'steps'") &&
                        Catch::Contains("beyond the range") && !Catch::Contains("[json.exception"));
  }
  // A value that underflows to 0 is a number, and then out of range for steps.
  apply_overrides(j, {"steps=1e-400"}, "cfg.json");
  CHECK_THAT(parse_error(j), Catch::Contains("'steps': expected an integer in [1, 2^62]"));
}

TEST_CASE("config: a config file with a number beyond a double names the file") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("mousse_cfg_" + std::to_string(::getpid()) + ".json"))
          .string();
  std::ofstream(path) << R"({"steps": 1e400})";
  const std::string err = error_of([&] { read_json_file(path); });
  std::filesystem::remove(path);
  CHECK_THAT(err, Catch::Contains(path) && Catch::Contains("not valid JSON") &&
                      Catch::Contains("1e400") && !Catch::Contains("[json.exception"));
}

TEST_CASE("config: the batch split over ranks does not overflow") {
  RunConfig rc = parse_run_config(toy_config(), "cfg.json");
  CHECK(rc.batch.splits_over(1));
  CHECK(rc.batch.splits_over(2));
  CHECK(!rc.batch.splits_over(3));
  CHECK(rc.batch.grad_accum(2) == 1);
  rc.batch.global_tokens = int64_t(1) << 62;
  rc.batch.micro_batch = int64_t(1) << 30;
  rc.batch.seq_len = 1 << 24;  // micro_batch × seq_len × 2^31 ranks would overflow int64
  CHECK(!rc.batch.splits_over(std::numeric_limits<int>::max()));
  CHECK(rc.batch.splits_over(256));
}

TEST_CASE("config: a config in range but far beyond any machine fails its memory plan") {
  // Every value within its key's range, the products not: the plan (which `mousse config
  // --memory` prints and `train` allocates) is an error, not a size wrapped around 2^64.
  json huge_batch = toy_config();
  huge_batch["model"]["d_model"] = 1 << 20;
  huge_batch["model"]["n_head"] = 1 << 10;
  huge_batch["batch"]["micro_batch"] = 2147483647;
  huge_batch["batch"]["global_tokens"] = int64_t(2147483647) * 64;
  huge_batch["optimizer"]["matrix"]["type"] = "adamw";
  const RunConfig a = parse_run_config(huge_batch, "cfg.json");  // each key is in range
  CHECK_THROWS_WITH(plan_run_memory(a, Device::cpu, 1), Catch::Contains("exceeds 2^60 bytes"));
  json deep = huge_batch;
  deep["model"]["n_layer"] = 16384;
  deep["batch"]["micro_batch"] = 1;
  deep["batch"]["global_tokens"] = 64;
  const RunConfig b = parse_run_config(deep, "cfg.json");
  CHECK_THROWS_WITH(plan_run_memory(b, Device::cpu, 1), Catch::Contains("exceeds 2^60 bytes"));
}
