// mousse bench -c CONFIG.json [--set key.path=value ...] [--steps N] [--warmup N]
//              [--phase-steps N] [--synthetic | --data auto|config|synthetic] [--json PATH]
#include <memory>

#include "cli/commands.h"
#include "train/bench.h"
#include "train/run_config.h"

namespace mousse {

CommandRunner add_bench_command(CLI::App& app) {
  struct Args {
    std::string config;
    std::vector<std::string> sets;
    BenchOptions opt;
    bool synthetic = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "bench", "time training steps of a config: tokens/s, MFU, per-phase times, memory");
  cmd->add_option("-c,--config", a->config, "experiment config (JSON)")->required();
  cmd->add_option("--set", a->sets, "override a config key: key.path=value (repeatable)");
  cmd->add_option("--steps", a->opt.steps, "timed steps")->capture_default_str();
  cmd->add_option("--warmup", a->opt.warmup, "untimed steps first")->capture_default_str();
  cmd->add_option("--phase-steps", a->opt.phase_steps,
                  "steps timed phase by phase (device syncs around forward/backward/optimizer; "
                  "0 = skip)")->capture_default_str();
  cmd->add_option("--profile", a->opt.profile_steps,
                  "then N steps with every op timed on its own: ms per step per phase, op and "
                  "GEMM shape (0 = off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--data", a->opt.data,
                  "token source: auto (the config's shards if present, else synthetic), "
                  "config, synthetic")->capture_default_str()
      ->check(CLI::IsMember({"auto", "config", "synthetic"}));
  cmd->add_flag("--synthetic", a->synthetic, "random tokens (same as --data synthetic)");
  cmd->add_option("--json", a->opt.json_path, "write the summary as JSON to this file");
  cmd->add_flag("--quiet", a->opt.quiet, "only the BENCH summary line");
  return [cmd, a]() {
    if (!*cmd) return -1;
    RunConfig cfg = load_run_config(a->config, a->sets);
    if (a->synthetic) a->opt.data = "synthetic";
    run_bench(cfg, a->opt);
    return 0;
  };
}

}  // namespace mousse
