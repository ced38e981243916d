// Unit tests of the trainer's pieces: schedules, config validation and overrides,
// safetensors files, checkpoint bookkeeping.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

#include "core/safetensors.h"
#include "train/checkpoint.h"
#include "train/run_config.h"
#include "train/schedule.h"
#include "test_errors.h"

using namespace mousse;
namespace fs = std::filesystem;

namespace {
json toy_config() {
  return json::parse(R"({
    "model": {"preset": "custom", "n_layer": 2, "n_head": 2, "d_model": 32, "max_seq_len": 64},
    "data": {"train": "x_*.bin"},
    "batch": {"global_tokens": 512, "micro_batch": 4, "seq_len": 64},
    "optimizer": {"matrix": {"type": "adamw", "lr": 1e-3}, "embedding": {"type": "lion", "lr": 1e-4}},
    "steps": 10
  })");
}
std::string error_of(const json& j) {
  return mousse_test::error_of([&] { parse_run_config(j, "cfg.json"); });
}
}  // namespace

TEST_CASE("cosine schedule: linear warmup to 1, cosine to the floor") {
  Schedule s;
  s.warmup = 0.1;
  s.min_ratio = 0.1;
  const int64_t total = 1000;
  CHECK(s.factor(0, total) == Approx(1.0 / 100));
  CHECK(s.factor(49, total) == Approx(0.5));
  CHECK(s.factor(99, total) == Approx(1.0));
  CHECK(s.factor(100, total) == Approx(1.0));
  CHECK(s.factor(550, total) == Approx(0.1 + 0.9 * 0.5));
  CHECK(s.factor(999, total) == Approx(0.1).margin(1e-4));
  CHECK(s.factor(999, total) > 0.1);          // the last step still trains above the floor
  CHECK(s.factor(1000, total) == Approx(0.1));  // which it reaches one step after the last
  for (int64_t i = 100; i + 1 < total; i++) CHECK(s.factor(i + 1, total) <= s.factor(i, total));
}

TEST_CASE("WSD schedule: warmup, stable, decay over the last fraction") {
  Schedule s;
  s.type = "wsd";
  s.warmup = 0.1;
  s.decay = 0.2;
  const int64_t total = 100;
  CHECK(s.factor(9, total) == 1.0);
  CHECK(s.factor(50, total) == 1.0);
  CHECK(s.factor(79, total) == 1.0);
  CHECK(s.stable_end(total) == 80);
  // Dion's form (N − s)/D: 1 at the first decay step, 1/D at the last, 0 only after it.
  CHECK(s.factor(80, total) == 1.0);
  CHECK(s.factor(81, total) == 19.0 / 20);
  CHECK(s.factor(99, total) == 1.0 / 20);
  CHECK(s.factor(100, total) == 0.0);
  s.type = "constant";
  CHECK(s.factor(99, total) == 1.0);
}

TEST_CASE("schedules: the closed form at the phase boundaries, no step at the floor") {
  // For random lengths and fractions: warmup (s+1)/W reaches exactly 1 at its last step; WSD
  // stays at exactly 1 through its stable phase and decays as (N − s)/D (linear shape, floor 0),
  // exactly; both WSD and cosine are above the floor from the end of warmup to the last step
  // N − 1 and reach it at N.
  std::mt19937 rng(42);
  for (int trial = 0; trial < 200; trial++) {
    const int64_t N = 1 + int64_t(rng() % 3000);
    Schedule s;
    s.type = "wsd";
    s.warmup = double(rng() % 500) / 1000.0;  // [0, 0.5)
    s.decay = double(rng() % 500) / 1000.0;
    const int64_t W = std::llround(s.warmup * double(N)), D = std::llround(s.decay * double(N));
    INFO("N " << N << " warmup " << s.warmup << " (W " << W << ") decay " << s.decay << " (D "
              << D << ")");
    int64_t wrong = 0;  // (one CHECK per case, not per step)
    for (int64_t i = 0; i < W; i++) wrong += s.factor(i, N) != double(i + 1) / double(W);
    for (int64_t i = W; i < N - D; i++) wrong += s.factor(i, N) != 1.0;
    for (int64_t i = std::max(W, N - D); i < N; i++)
      wrong += s.factor(i, N) != double(N - i) / double(D);
    CHECK(wrong == 0);
    if (W > 0) CHECK(s.factor(W - 1, N) == 1.0);  // warmup end
    CHECK(s.stable_end(N) == N - D);
    if (D > 0 && N - D >= W) {
      CHECK(s.factor(N - D - 1, N) == 1.0);          // the last stable step
      CHECK(s.factor(N - D, N) == 1.0);              // the first decay step: (N − s)/D = 1
      CHECK(s.factor(N - 1, N) == 1.0 / double(D));  // the last step still trains
      CHECK(s.factor(N, N) == 0.0);                  // the floor comes one step later
    }
    // Every shape and floor, and cosine: after warmup above the floor, at most 1, and
    // non-increasing up to the last step; at the floor at N.
    const double floor = (rng() % 2) ? 0.0 : double(rng() % 100) / 200.0;
    for (const char* type : {"wsd", "cosine"})
      for (const char* shape : {"linear", "cosine", "sqrt"}) {
        Schedule t = s;
        t.type = type;
        t.decay_shape = shape;
        t.min_ratio = floor;
        int64_t bad = 0;
        for (int64_t i = W; i < N; i++) {
          const double f = t.factor(i, N);
          bad += !(f > floor && f <= 1.0 && (i == W || f <= t.factor(i - 1, N)));
        }
        INFO(type << " / " << shape << " floor " << floor);
        CHECK(bad == 0);
        if (N > W) CHECK(t.factor(N, N) == Approx(floor).margin(1e-15));
      }
  }
}

TEST_CASE("config errors name the file and the key") {
  CHECK(error_of(toy_config()).empty());
  json j = toy_config();
  j["optimiser"] = 1;
  CHECK_THAT(error_of(j), Catch::Contains("cfg.json") && Catch::Contains("'optimiser'") &&
                              Catch::Contains("unknown key"));
  j = toy_config();
  j["steps"] = "ten";
  CHECK_THAT(error_of(j), Catch::Contains("'steps'") && Catch::Contains("integer"));
  j = toy_config();
  j["batch"]["global_tokens"] = 500;
  CHECK_THAT(error_of(j), Catch::Contains("'batch.global_tokens'") && Catch::Contains("multiple"));
  j = toy_config();
  j["batch"]["seq_len"] = 128;
  CHECK_THAT(error_of(j), Catch::Contains("'batch.seq_len'"));
  j = toy_config();
  j["model"]["d_model"] = 33;
  CHECK_THAT(error_of(j), Catch::Contains("'model.d_model'"));
  j = toy_config();
  j.erase("data");
  CHECK_THAT(error_of(j), Catch::Contains("'data'") && Catch::Contains("missing"));
  j = toy_config();
  j["schedule"] = {{"type", "linear"}};
  CHECK_THAT(error_of(j), Catch::Contains("'schedule.type'") && Catch::Contains("cosine"));
  j = toy_config();
  j["device"] = "tpu";
  CHECK_THAT(error_of(j), Catch::Contains("'device'"));
}

TEST_CASE("config overrides (--set): nested keys, JSON values, bare strings") {
  json j = toy_config();
  apply_overrides(j, {"optimizer.matrix.lr=0.02", "data.shuffle=true", "run_name=abc",
                      "schedule.type=wsd", "data.val=[\"a.bin\",\"b.bin\"]"}, "cfg.json");
  CHECK(j["optimizer"]["matrix"]["lr"].get<double>() == 0.02);
  CHECK(j["data"]["shuffle"].get<bool>());
  CHECK(j["run_name"] == "abc");
  RunConfig rc = parse_run_config(j, "cfg.json");
  CHECK(rc.schedule.type == "wsd");
  CHECK(rc.data.val.size() == 2);
  CHECK_THROWS_WITH(apply_overrides(j, {"novalue"}, "cfg.json"), Catch::Contains("key.path=value"));
  CHECK_THROWS_WITH(apply_overrides(j, {"steps.x=1"}, "cfg.json"), Catch::Contains("non-object"));
}

TEST_CASE("the resolved config round-trips through the parser") {
  RunConfig a = parse_run_config(toy_config(), "cfg.json");
  RunConfig b = parse_run_config(a.resolved(), "resolved.json");
  CHECK(a.resolved() == b.resolved());
  CHECK(b.model.d_model == 32);
  CHECK(b.batch.grad_accum(1) == 2);
  CHECK(b.batch.grad_accum(2) == 1);
}

TEST_CASE("safetensors: round trip, conversion, corrupt files") {
  fs::path dir = fs::temp_directory_path() / ("mousse_st_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> a(6 * 7);
  for (auto& v : a) v = nd(rng);
  SafeTensorsWriter w;
  w.add("a", DType::f32, Shape{6, 7}, [&](void* d) { std::memcpy(d, a.data(), a.size() * 4); });
  w.set_metadata("k", "v");
  const std::string path = (dir / "t.safetensors").string();
  w.write_atomic(path);
  SafeTensorsFile f(path);
  REQUIRE(f.entries().size() == 1);
  CHECK(f.metadata().at("k") == "v");
  std::vector<float> back(a.size());
  f.read("a", DType::f32, Shape{6, 7}, back.data());
  CHECK(back == a);
  std::vector<double> asd(a.size());
  f.read("a", DType::f64, Shape{6, 7}, asd.data());
  CHECK(asd[5] == double(a[5]));
  CHECK_THROWS_WITH(f.read("a", DType::f32, Shape{7, 6}, back.data()),
                    Catch::Contains("shape [6, 7], expected [7, 6]"));
  CHECK_THROWS_WITH(f.read("b", DType::f32, Shape{1}, back.data()), Catch::Contains("no tensor named 'b'"));
  // Truncated: the header promises more data than the file has.
  auto size = fs::file_size(path);
  fs::resize_file(path, size - 10);
  CHECK_THROWS_WITH(SafeTensorsFile(path), Catch::Contains("t.safetensors") && Catch::Contains("truncated"));
  std::ofstream(path, std::ios::binary) << "xx";
  CHECK_THROWS_WITH(SafeTensorsFile(path), Catch::Contains("not a safetensors file"));
  // No temporary files left behind.
  size_t n = 0;
  for (auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  CHECK(n == 0);
  fs::remove_all(dir);
}

TEST_CASE("latest_checkpoint ignores partial files, and bf16 host rounding is to nearest even") {
  fs::path dir = fs::temp_directory_path() / ("mousse_ck_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (int step : {5, 40, 12}) std::ofstream(checkpoint_path(dir.string(), step)) << "x";
  std::ofstream((dir / "ckpt_00000099.safetensors.tmp.123").string()) << "partial";
  CHECK(latest_checkpoint(dir.string()) == checkpoint_path(dir.string(), 40));
  CHECK(latest_checkpoint((dir / "none").string()).empty());
  fs::remove_all(dir);
  CHECK(bf16_to_float(float_to_bf16(1.0f)) == 1.0f);
  CHECK(bf16_to_float(float_to_bf16(1.0f + 1.0f / 256)) == 1.0f);  // tie → even
  CHECK(bf16_to_float(float_to_bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);
}
