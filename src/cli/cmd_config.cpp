// mousse config -c CONFIG.json [--set key.path=value ...] [--np RANKS] [--memory DEVICE] [--quiet]
// Validates a config without training: parses every key (as `train` does), builds the parameter
// groups and optimizers on a planned-but-never-allocated model (so an 834m config costs nothing),
// checks the batch split for the given number of ranks and prints the resolved config. With
// --memory cuda|cpu it also plans each rank's device memory as `train` would (no device needed).
#include <algorithm>
#include <cstdio>
#include <memory>

#include "backend/select.h"
#include "cli/commands.h"
#include "core/arena.h"
#include "model/params.h"
#include "train/memory_plan.h"
#include "train/param_groups.h"
#include "train/run_config.h"

namespace mousse {

namespace {

void print_memory_plan(const RunConfig& cfg, Device device, int np) {
  const std::vector<RankMemory> plan = plan_run_memory(cfg, device, np);
  auto by_bytes = [](const RankMemory& x, const RankMemory& y) { return x.arena_bytes < y.arena_bytes; };
  const RankMemory& most = *std::max_element(plan.begin(), plan.end(), by_bytes);
  const RankMemory& least = *std::min_element(plan.begin(), plan.end(), by_bytes);
  if (np > 1 && most.arena_bytes == least.arena_bytes)
    std::printf("every one of the %d ranks plans %s:\n", np,
                format_bytes(double(most.arena_bytes)).c_str());
  else if (np > 1)
    std::printf("rank %d of %d plans the most memory (rank %d the least: %s):\n", most.rank, np,
                least.rank, format_bytes(double(least.arena_bytes)).c_str());
  std::printf("%s", most.report.c_str());
  std::printf("not planned: the CUDA context and the cuBLASLt/cuSOLVER/cuDNN workspaces%s\n",
              device == Device::cuda ? " (mousse bench prints the device's total in use)" : "");
}

}  // namespace

CommandRunner add_config_command(CLI::App& app) {
  struct Args {
    std::string config;
    std::vector<std::string> sets;
    int np = 1;
    bool quiet = false;
    std::string memory;  // "", "cpu" or "cuda"
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("config", "validate a config and print it resolved");
  cmd->add_option("-c,--config", a->config, "experiment config (JSON)")->required();
  cmd->add_option("--set", a->sets, "override a config key: key.path=value (repeatable)");
  cmd->add_option("--np", a->np, "ranks the run will use (checks the batch split)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("-q,--quiet", a->quiet, "print only the summary, not the resolved JSON");
  cmd->add_option("--memory", a->memory,
                  "also plan the device memory of each of the --np ranks on this device (the "
                  "largest rank's plan is printed; no device needed)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  return [cmd, a]() {
    if (!*cmd) return -1;
    RunConfig cfg = load_run_config(a->config, a->sets);
    const BatchConfig& b = cfg.batch;
    if (!b.splits_over(a->np))
      fail(cfg.file, ": key 'batch.global_tokens': ", b.global_tokens,
           " is not a multiple of micro_batch × seq_len × ranks = ", b.micro_batch * b.seq_len,
           " × ", a->np);
    auto ops = make_ops("cpu");
    Arena arena(*ops);
    ParamTable table(cfg.model, Precision{}, arena);
    OptimizerSetup setup = make_optimizer_setup(cfg.optimizer, cfg.file, table);
    if (!a->quiet) std::printf("%s\n", cfg.resolved().dump(2).c_str());
    const ModelConfig& m = cfg.model;
    std::printf("ok: %s | model %s: %d layers, d_model %d, %d heads, %.1fM parameters\n",
                cfg.file.c_str(), m.preset.c_str(), m.n_layer, m.d_model, m.n_head,
                m.num_parameters() / 1e6);
    std::printf("batch: %lld tokens/step = %d ranks × %lld micro-steps × %lld × %lld; %lld steps "
                "= %.3gB tokens\n",
                (long long)b.global_tokens, a->np, (long long)b.grad_accum(a->np),
                (long long)b.micro_batch, (long long)b.seq_len, (long long)cfg.steps,
                double(cfg.steps) * double(b.global_tokens) / 1e9);
    for (ParamGroup& g : setup.groups)
      std::printf("optimizer %-9s lr %.3g × %.3g: %s (%zu tensors)\n", g.name.c_str(), g.lr,
                  g.lr_scale, g.optimizer->describe().c_str(), g.params.size());
    if (!a->memory.empty())
      print_memory_plan(cfg, a->memory == "cuda" ? Device::cuda : Device::cpu, a->np);
    return 0;
  };
}

}  // namespace mousse
