// mousse train -c CONFIG.json [--set key.path=value ...] [--resume | --overwrite]
// Exit status: 0 when the run reached its end (or --stop-after), kExitStopped (75) when a signal
// stopped it after writing a checkpoint (continue with --resume), 1 on an error.
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
    bool resume = false, overwrite = false, quiet = false;
    int64_t stop_after = -1;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("train", "train a model from a JSON config");
  cmd->add_option("-c,--config", a->config, "experiment config (JSON)")->required();
  cmd->add_option("--set", a->sets, "override a config key: key.path=value (repeatable)");
  auto* resume = cmd->add_flag("--resume", a->resume,
                               "continue from the newest checkpoint in checkpoint.dir");
  cmd->add_flag("--overwrite", a->overwrite,
                "start afresh in a log.dir that holds a run, deleting that run's metrics.jsonl, "
                "config.json and checkpoints first")
      ->excludes(resume);
  cmd->add_option("--stop-after", a->stop_after,
                  "stop after this many steps, writing a checkpoint (resume later)");
  cmd->add_flag("--quiet", a->quiet, "no per-step progress lines");
  return [cmd, a]() {
    if (!*cmd) return -1;
    install_stop_handlers();  // from the start: a stop signal never kills the process
    RunConfig cfg = load_run_config(a->config, a->sets);
    // One rank per process under mpirun/srun (MPI on cpu, NCCL on cuda), else single process.
    auto comm = make_communicator(cfg.device);
    TrainOptions opt;
    opt.resume = a->resume;
    opt.overwrite = a->overwrite;
    opt.stop_after = a->stop_after;
    opt.quiet = a->quiet;
    if (comm->world_size() == 1) {
      Trainer trainer(cfg, opt, *comm);
      trainer.run();
      return trainer.stop_signal() ? kExitStopped : 0;
    }
    // With several ranks an error on one must end all of them (the others would wait in a
    // collective forever): report it and abort the job.
    int status = 0;
    try {
      Trainer trainer(cfg, opt, *comm);
      trainer.run();
      status = trainer.stop_signal() ? kExitStopped : 0;
    } catch (const std::exception& e) {
      comm->abort(e.what());
    }
    return status;
  };
}

}  // namespace mousse
