// mousse's CPU forward pass in f32 on given token sequences, for comparison with other
// implementations (the transformers test). Usage: dump_logits WEIGHTS OUT < prompts
// where each line of stdin is one sequence of token ids; OUT receives, for every sequence in
// order, its logits [len, vocab_size] as little-endian float32.
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "backend/select.h"
#include "core/arena.h"
#include "model/gpt.h"
#include "train/weight_source.h"

int main(int argc, char** argv) try {
  using namespace mousse;
  if (argc != 3) {
    std::fprintf(stderr, "usage: dump_logits WEIGHTS OUT < prompts\n");
    return 2;
  }
  std::vector<std::vector<int32_t>> prompts;
  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream in(line);
    std::vector<int32_t> p;
    for (int64_t t; in >> t;) p.push_back(int32_t(t));
    if (!p.empty()) prompts.push_back(p);
  }
  const WeightSource src(argv[1]);
  if (!src.model()) fail(argv[1], ": no model config");
  const ModelConfig cfg = *src.model();
  int64_t T = 1;
  for (auto& p : prompts) T = std::max<int64_t>(T, int64_t(p.size()));
  auto ops = make_ops("cpu");
  Arena arena(*ops);
  GPT model(cfg, Precision{}, /*B=*/1, T, arena);
  arena.allocate();
  model.bind();
  src.load(*ops, model.params());
  FILE* out = std::fopen(argv[2], "wb");
  if (!out) fail("cannot write ", argv[2]);
  const int64_t Vp = cfg.padded_vocab, V = cfg.vocab_size;
  std::vector<float> logits(size_t(T * Vp));
  std::vector<int32_t> targets(size_t(T), 0);
  for (auto& p : prompts) {
    for (int32_t t : p)
      if (t < 0 || t >= V) fail("token ", t, " outside the vocabulary");
    std::vector<int32_t> inputs(size_t(T), 0);  // causal: positions after the prompt are unseen
    std::copy(p.begin(), p.end(), inputs.begin());
    ops->from_host(model.inputs(), inputs.data());
    ops->from_host(model.targets(), targets.data());
    model.forward(*ops, /*compute_grad=*/false, 1.0);
    ops->to_host(logits.data(), model.logits());
    for (size_t i = 0; i < p.size(); i++)
      if (std::fwrite(logits.data() + i * size_t(Vp), sizeof(float), size_t(V), out) != size_t(V))
        fail("writing ", argv[2], " failed");
  }
  if (std::fclose(out) != 0) fail("writing ", argv[2], " failed");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
