// mousse export --checkpoint PATH|DIR -o OUT [--format safetensors|hf] [--dtype f32|bf16]
//               [--vocab DIR] [--overwrite]
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "gpt2_tokenizer.h"
#include "train/weights_export.h"

namespace mousse {

CommandRunner add_export_command(CLI::App& app) {
  struct Args { std::string checkpoint, out, format = "safetensors", dtype, vocab; bool overwrite = false; };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "export", "write trained weights as .safetensors, or as a Hugging Face transformers model");
  cmd->add_option("--checkpoint,-w,--weights", a->checkpoint,
                  "a checkpoint, a checkpoint directory (its newest), an exported .safetensors or "
                  "a Hugging Face directory written by --format hf")->required();
  cmd->add_option("-o,--out", a->out,
                  "output: a .safetensors file, or a directory for --format hf")->required();
  cmd->add_option("--format", a->format,
                  "safetensors: the canonical weights (for init_from and sample); hf: a "
                  "Qwen3ForCausalLM directory for transformers, vLLM, lm-evaluation-harness")
      ->check(CLI::IsMember({"safetensors", "hf"}));
  cmd->add_option("--dtype", a->dtype, "weights dtype (default: f32 for safetensors, bf16 for hf)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_option("--vocab", a->vocab,
                  std::string("for --format hf: ") + tok::Gpt2Tokenizer::kVocabOptionHelp);
  cmd->add_flag("--overwrite", a->overwrite,
                "replace an existing output file, or an earlier export directory");
  return [cmd, a]() {
    if (!*cmd) return -1;
    if (a->format == "safetensors" && !a->vocab.empty())
      fail("--vocab is for --format hf (the tokenizer files); safetensors holds weights only");
    const WeightSource src(a->checkpoint);
    if (a->format == "hf") {
      HfExportOptions opt;
      opt.dtype = a->dtype.empty() ? DType::bf16 : dtype_from_name(a->dtype);
      opt.vocab_dir = a->vocab;
      opt.overwrite = a->overwrite;
      export_hf(src, a->out, opt);
    } else {
      export_safetensors(src, a->out, a->dtype.empty() ? DType::f32 : dtype_from_name(a->dtype),
                         a->overwrite);
    }
    std::printf("wrote %s (%s) from %s\n", a->out.c_str(), a->format.c_str(), src.path().c_str());
    return 0;
  };
}

}  // namespace mousse
