#pragma once
// Text generation from trained weights (`mousse sample`): load a checkpoint, an exported
// .safetensors or a Hugging Face directory (train/weight_source.h) into a GPT with B = 1, run the full forward pass once per new token and sample
// the next token from the last position's logits (temperature, top-k; the padded vocabulary
// rows are never sampled). Meant to eyeball a model, not for speed: there is no KV cache.
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace mousse {

struct SampleOptions {
  std::string weights;        // a checkpoint (or its directory), exported weights or an HF dir
  std::string device = "auto";
  int64_t max_new_tokens = 128;
  double temperature = 0.8;   // 0 = greedy (argmax)
  int top_k = 40;             // 0 = the whole vocabulary
  uint64_t seed = 1337;
  int64_t context = 0;        // window T of the forward pass; 0 = model.max_seq_len
  bool stop_at_eot = true;    // stop when <|endoftext|> is sampled
};

// Picks a token from `logits[0, vocab)`: softmax(logits / temperature) restricted to the top_k
// largest (all when top_k <= 0 or >= vocab); temperature <= 0 takes the argmax.
uint32_t sample_token(const float* logits, int vocab, double temperature, int top_k,
                      std::mt19937_64& rng);

// Generates up to max_new_tokens after `prompt` (which must not be empty; callers pass
// <|endoftext|> for an unconditional sample). on_token is called with each new token as it is
// sampled. Returns the new tokens.
std::vector<uint32_t> generate(const SampleOptions& opt, const std::vector<uint32_t>& prompt,
                               const std::function<void(uint32_t)>& on_token = {});

}  // namespace mousse
