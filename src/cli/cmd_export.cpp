// mousse export --checkpoint PATH|DIR --out weights.safetensors
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "train/checkpoint.h"

namespace mousse {

CommandRunner add_export_command(CLI::App& app) {
  struct Args { std::string checkpoint, out; };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("export", "write a checkpoint's weights as .safetensors");
  cmd->add_option("--checkpoint", a->checkpoint,
                  "a checkpoint file, or a checkpoint directory (its newest is used)")->required();
  cmd->add_option("-o,--out", a->out, "output .safetensors path")->required();
  return [cmd, a]() {
    if (!*cmd) return -1;
    std::string path = a->checkpoint;
    if (std::filesystem::is_directory(path)) {
      path = latest_checkpoint(a->checkpoint);
      if (path.empty()) fail("no checkpoint (ckpt_*.safetensors) in directory ", a->checkpoint);
    }
    export_weights(path, a->out);
    std::printf("wrote %s from %s\n", a->out.c_str(), path.c_str());
    return 0;
  };
}

}  // namespace mousse
