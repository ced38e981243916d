// mousse sample --checkpoint PATH|DIR [--prompt TEXT] [-n TOKENS] [--temperature T] [--top-k K]
//               [--seed S] [--context T] [--num-samples N] [--vocab DIR] [--device cpu|cuda|auto]
//               [--no-stop] [--ids]
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "gpt2_tokenizer.h"
#include "train/sample.h"

namespace mousse {

CommandRunner add_sample_command(CLI::App& app) {
  struct Args {
    SampleOptions opt;
    std::string prompt, vocab;
    int num_samples = 1;
    bool keep_going = false;
    bool ids = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("sample", "generate text from a checkpoint or exported weights");
  cmd->add_option("--checkpoint,-w,--weights", a->opt.weights,
                  "a checkpoint, a checkpoint directory (newest), a .safetensors from export or a "
                  "Hugging Face directory from export --format hf")
      ->required();
  cmd->add_option("-p,--prompt", a->prompt, "text to continue (default: <|endoftext|>, i.e. none)");
  cmd->add_option("-n,--tokens", a->opt.max_new_tokens, "new tokens per sample")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("-t,--temperature", a->opt.temperature, "softmax temperature (0 = greedy)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("-k,--top-k", a->opt.top_k, "sample among the K most likely (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a->opt.seed, "random seed");
  cmd->add_option("--context", a->opt.context, "forward window in tokens (default: max_seq_len)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--num-samples", a->num_samples, "how many samples")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-stop", a->keep_going, "do not stop at <|endoftext|>");
  cmd->add_flag("--ids", a->ids,
                "print the new tokens' ids (space-separated, one line per sample) instead of text");
  cmd->add_option("--vocab", a->vocab, tok::Gpt2Tokenizer::kVocabOptionHelp);
  cmd->add_option("--device", a->opt.device, "cpu | cuda | auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  return [cmd, a]() {
    if (!*cmd) return -1;
    tok::Gpt2Tokenizer tokenizer(tok::Gpt2Tokenizer::find_vocab_dir(a->vocab));
    std::vector<uint32_t> prompt = tokenizer.encode_ordinary(a->prompt);
    if (prompt.empty()) prompt.push_back(tok::Gpt2Tokenizer::kEot);
    SampleOptions opt = a->opt;
    opt.stop_at_eot = !a->keep_going;
    for (int s = 0; s < a->num_samples; s++) {
      opt.seed = a->opt.seed + uint64_t(s);
      if (a->num_samples > 1) std::printf("--- sample %d (seed %llu)\n", s + 1, (unsigned long long)opt.seed);
      if (!a->ids) std::fwrite(a->prompt.data(), 1, a->prompt.size(), stdout);
      std::fflush(stdout);
      bool first = true;
      generate(opt, prompt, [&](uint32_t t) {
        if (a->ids) {
          std::printf(first ? "%u" : " %u", t);
          first = false;
        } else if (t == tok::Gpt2Tokenizer::kEot) {
          std::fputs("<|endoftext|>", stdout);
        } else {
          const std::string& b = tokenizer.token_bytes(t);
          std::fwrite(b.data(), 1, b.size(), stdout);
        }
        std::fflush(stdout);
      });
      std::printf("\n");
    }
    return 0;
  };
}

}  // namespace mousse
