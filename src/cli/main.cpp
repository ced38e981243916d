// mousse: the one binary. Subcommands: train, export, bench, sample.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"mousse: GPT pretraining with AdamW, Lion, Muon, SOAP and Mousse"};
  app.require_subcommand(1);
  try {
    CLI11_PARSE(app, argc, argv);
  } catch (const mousse::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
