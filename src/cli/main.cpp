// mousse: the one binary. Subcommands: train, export (bench and sample arrive with their issues).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "dist/communicator.h"
#include "train/checkpoint.h"
#include "train/run_config.h"
#include "train/trainer.h"

using namespace mousse;

int main(int argc, char** argv) {
  CLI::App app{"mousse: GPT pretraining with AdamW, Lion, Muon, SOAP and Mousse"};
  app.require_subcommand(1);

  std::string config_path;
  std::vector<std::string> sets;
  bool resume = false, quiet = false;
  int64_t stop_after = -1;
  auto* train = app.add_subcommand("train", "train a model from a JSON config");
  train->add_option("-c,--config", config_path, "experiment config (JSON)")->required();
  train->add_option("--set", sets, "override a config key: key.path=value (repeatable)");
  train->add_flag("--resume", resume, "continue from the newest checkpoint in checkpoint.dir");
  train->add_option("--stop-after", stop_after,
                    "stop after this many steps, writing a checkpoint (resume later)");
  train->add_flag("--quiet", quiet, "no per-step progress lines");

  std::string ckpt_in, weights_out;
  auto* exp = app.add_subcommand("export", "write a checkpoint's weights as .safetensors");
  exp->add_option("--checkpoint", ckpt_in,
                  "a checkpoint file, or a checkpoint directory (its newest is used)")->required();
  exp->add_option("-o,--out", weights_out, "output .safetensors path")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*train) {
      RunConfig cfg = load_run_config(config_path, sets);
      auto comm = make_single_process_communicator();
      install_stop_handlers();
      TrainOptions opt;
      opt.resume = resume;
      opt.stop_after = stop_after;
      opt.quiet = quiet;
      Trainer trainer(cfg, opt, *comm);
      trainer.run();
    } else if (*exp) {
      std::string path = ckpt_in;
      if (std::filesystem::is_directory(path)) {
        path = latest_checkpoint(ckpt_in);
        if (path.empty()) fail("no checkpoint in directory ", ckpt_in);
      }
      export_weights(path, weights_out);
      std::printf("wrote %s from %s\n", weights_out.c_str(), path.c_str());
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
