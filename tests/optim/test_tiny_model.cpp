// Every optimizer, as the matrix optimizer of the `tiny` GPT (embeddings and lm_head frozen, so
// only the matrix optimizer can lower the loss), lowers the training loss within a few steps;
// the trainer logs the optimizer diagnostics into the JSONL.
#include "optim_test_util.h"

#include <filesystem>

#include "dist/communicator.h"
#include "train/run_config.h"
#include "train/trainer.h"

using namespace mousse;
using namespace mousse::otest;

#ifndef MOUSSE_SHARED_DATA
#define MOUSSE_SHARED_DATA "../shared/data"
#endif

namespace {

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream f(path);
  std::vector<json> out;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("every optimizer lowers the loss of the tiny model", "[optim][tiny]") {
  const std::string shard = std::string(MOUSSE_SHARED_DATA) +
                            "/tinyshakespeare/tiny_shakespeare_train.bin";
  if (!std::filesystem::exists(shard)) {
    WARN("skipped: no " << shard);
    return;
  }
  const std::vector<json> matrix_cfgs = {
      {{"type", "adamw"}, {"lr", 3e-3}},
      {{"type", "lion"}, {"lr", 1e-3}},
      {{"type", "muon"}, {"lr", 0.02}},
      {{"type", "soap"}, {"lr", 3e-3}, {"update_interval", 4}},
      {{"type", "mousse"}, {"lr", 0.02}, {"update_interval", 4}},
  };
  const int steps = 8;
  for (const json& mc : matrix_cfgs) {
    const std::string type = mc["type"];
    INFO("matrix optimizer " << mc.dump());
    char tmpl[] = "/tmp/mousse_optim_tiny_XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    json cfg = {
        {"run_name", "optim-tiny-" + type},
        {"model", {{"preset", "tiny"}}},
        {"data", {{"train", {shard}}}},
        {"batch", {{"global_tokens", 128}, {"micro_batch", 2}, {"seq_len", 64}}},
        {"optimizer",
         {{"grad_clip", 1.0},
          {"matrix", mc},
          {"embedding", {{"type", "lion"}, {"lr", 0.0}}}}},
        {"schedule", {{"type", "constant"}}},
        {"steps", steps},
        {"eval", {{"every", 0}, {"tokens", 0}}},
        {"log", {{"dir", dir}, {"every", 1}, {"diagnostics_every", 4}}},
        {"checkpoint", {{"every", 0}, {"keep", 1}}},
        {"seed", 7},
        {"device", "cpu"},
        {"precision", "f32"},
    };
    {
      RunConfig rc = parse_run_config(cfg, "tiny-test");
      auto comm = make_single_process_communicator();
      TrainOptions opt;
      opt.quiet = true;
      Trainer trainer(rc, opt, *comm);
      trainer.run();
    }
    std::vector<double> losses;
    json diag;
    for (const json& r : read_jsonl(dir + "/metrics.jsonl")) {
      if (r.value("type", "") == "train") losses.push_back(r["loss"].get<double>());
      if (r.value("type", "") == "diagnostics") diag = r;
    }
    std::filesystem::remove_all(dir);
    REQUIRE(losses.size() == size_t(steps));
    const double first = (losses[0] + losses[1]) / 2;
    const double last = (losses[steps - 2] + losses[steps - 1]) / 2;
    INFO("loss " << first << " -> " << last);
    std::printf("tiny %s: loss %.3f -> %.3f\n", type.c_str(), first, last);
    CHECK(std::isfinite(last));
    CHECK(last < first - 0.3);
    if (type == "muon" || type == "soap" || type == "mousse") {
      INFO(diag.dump());
      REQUIRE(diag.is_object());
      CHECK(diag["groups"]["matrix"]["update_rms"].get<double>() > 0);
    }
    if (type == "mousse") {
      CHECK(diag["groups"]["matrix"]["precond"].contains("blocks.0.mlp.fc"));
      CHECK(diag["groups"]["matrix"]["eigh_failures"].get<int64_t>() == 0);
    }
  }
}
