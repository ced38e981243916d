// mousse: the one binary. Each subcommand is a file in src/cli registered below.
#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"mousse: GPT pretraining with AdamW, Lion, Muon, SOAP and Mousse"};
  app.require_subcommand(1);
  std::vector<mousse::CommandRunner> commands = {
      mousse::add_train_command(app),
      mousse::add_export_command(app),
      mousse::add_bench_command(app),
      mousse::add_sample_command(app),
      mousse::add_config_command(app),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& run : commands) {
      int rc = run();
      if (rc >= 0) return rc;
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
