// mousse train -c CONFIG.json [--set key.path=value ...] [--resume]
#include <memory>

#include "cli/commands.h"
#include "dist/communicator.h"
#include "train/run_config.h"
#include "train/trainer.h"

namespace mousse {

CommandRunner add_train_command(CLI::App& app) {
  struct Args {
    std::string config;
    std::vector<std::string> sets;
    bool resume = false, quiet = false;
    int64_t stop_after = -1;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("train", "train a model from a JSON config");
  cmd->add_option("-c,--config", a->config, "experiment config (JSON)")->required();
  cmd->add_option("--set", a->sets, "override a config key: key.path=value (repeatable)");
  cmd->add_flag("--resume", a->resume, "continue from the newest checkpoint in checkpoint.dir");
  cmd->add_option("--stop-after", a->stop_after,
                  "stop after this many steps, writing a checkpoint (resume later)");
  cmd->add_flag("--quiet", a->quiet, "no per-step progress lines");
  return [cmd, a]() {
    if (!*cmd) return -1;
    RunConfig cfg = load_run_config(a->config, a->sets);
    // One rank per process under mpirun/srun (MPI on cpu, NCCL on cuda), else single process.
    auto comm = make_communicator(cfg.device);
    install_stop_handlers();
    TrainOptions opt;
    opt.resume = a->resume;
    opt.stop_after = a->stop_after;
    opt.quiet = a->quiet;
    if (comm->world_size() == 1) {
      Trainer trainer(cfg, opt, *comm);
      trainer.run();
      return 0;
    }
    // With several ranks an error on one must end all of them (the others would wait in a
    // collective forever): report it and abort the job.
    try {
      Trainer trainer(cfg, opt, *comm);
      trainer.run();
    } catch (const std::exception& e) {
      comm->abort(e.what());
    }
    return 0;
  };
}

}  // namespace mousse
