#pragma once
// Each subcommand of `mousse` lives in its own file and registers itself here. A command's
// run function is called after parsing when its subcommand was given.
#include <CLI/CLI.hpp>
#include <functional>

namespace mousse {

using CommandRunner = std::function<int()>;

CommandRunner add_train_command(CLI::App& app);
CommandRunner add_export_command(CLI::App& app);
CommandRunner add_bench_command(CLI::App& app);
CommandRunner add_sample_command(CLI::App& app);
CommandRunner add_config_command(CLI::App& app);

}  // namespace mousse
