#include "train/sample.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>

#include "backend/select.h"
#include "core/arena.h"
#include "core/safetensors.h"
#include "model/gpt.h"
#include "train/checkpoint.h"

namespace mousse {

std::string resolve_weights_path(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    std::string p = latest_checkpoint(path);
    if (p.empty()) fail("no checkpoint (ckpt_*.safetensors) in directory ", path);
    return p;
  }
  if (!std::filesystem::exists(path, ec))
    fail("weights '", path, "' do not exist (expected a checkpoint, a checkpoint directory or ",
         "a .safetensors written by `mousse export`)");
  return path;
}

ModelConfig model_config_of(const std::string& path) {
  SafeTensorsFile f(path);
  json model;  // (errors in either metadata name the file and the field)
  if (f.metadata().count("mousse")) {
    const json config = read_checkpoint_meta(path).config;
    if (config.contains("model")) model = config.at("model");
  }
  if (model.is_null()) model = f.metadata_json("model");
  if (model.is_null())
    fail(path, ": holds no model config (neither a mousse checkpoint nor a file written by ",
         "`mousse export`), so its dimensions are unknown");
  return model_config_from(ConfigNode(model, "model", path));
}

uint32_t sample_token(const float* logits, int vocab, double temperature, int top_k,
                      std::mt19937_64& rng) {
  if (vocab < 1) fail("sample_token: empty vocabulary");
  if (temperature <= 0)
    return uint32_t(std::max_element(logits, logits + vocab) - logits);
  std::vector<int> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  int k = (top_k <= 0 || top_k >= vocab) ? vocab : top_k;
  // Descending by logit, ties by the lower id: deterministic for a given seed.
  auto greater = [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (k < vocab) std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), greater);
  else std::sort(idx.begin(), idx.end(), greater);
  const double top = logits[idx[0]];
  std::vector<double> p(static_cast<size_t>(k));
  double sum = 0;
  for (int i = 0; i < k; i++) {
    double x = logits[idx[size_t(i)]];
    p[size_t(i)] = std::isfinite(x) ? std::exp((x - top) / temperature) : 0.0;
    sum += p[size_t(i)];
  }
  if (!(sum > 0) || !std::isfinite(sum)) return uint32_t(idx[0]);
  std::uniform_real_distribution<double> u(0.0, sum);
  double r = u(rng), acc = 0;
  for (int i = 0; i < k; i++) {
    acc += p[size_t(i)];
    if (r < acc) return uint32_t(idx[size_t(i)]);
  }
  return uint32_t(idx[size_t(k - 1)]);
}

std::vector<uint32_t> generate(const SampleOptions& opt, const std::vector<uint32_t>& prompt,
                               const std::function<void(uint32_t)>& on_token) {
  if (prompt.empty()) fail("generate: empty prompt (pass <|endoftext|> to start from nothing)");
  const std::string path = resolve_weights_path(opt.weights);
  ModelConfig cfg = model_config_of(path);
  for (uint32_t t : prompt)
    if (t >= uint32_t(cfg.vocab_size))
      fail("prompt token ", t, " is outside the model's vocabulary of ", cfg.vocab_size);
  // The window: no longer than the model allows and than this generation can use.
  int64_t T = opt.context > 0 ? opt.context : cfg.max_seq_len;
  if (T > cfg.max_seq_len) fail("--context ", T, " exceeds the model's max_seq_len ", cfg.max_seq_len);
  T = std::max<int64_t>(1, std::min<int64_t>(T, int64_t(prompt.size()) + opt.max_new_tokens));

  auto ops = make_ops(opt.device);
  Precision prec;
  if (ops->device() == Device::cuda) prec.activation = DType::bf16;
  Arena arena(*ops);
  GPT model(cfg, prec, /*B=*/1, T, arena);
  arena.allocate();
  model.bind();
  load_weights(path, *ops, model.params());
  model.sync_compute_weights(*ops, opt.seed);

  std::mt19937_64 rng(opt.seed);
  std::vector<uint32_t> seq = prompt, out;
  std::vector<int32_t> inputs(static_cast<size_t>(T)), targets(static_cast<size_t>(T), 0);
  const int64_t Vp = cfg.padded_vocab;
  const Tensor& logits = model.logits();
  std::vector<char> row_raw(size_t(Vp) * dtype_size(logits.dtype));
  std::vector<float> row(static_cast<size_t>(Vp));
  for (int64_t n = 0; n < opt.max_new_tokens; n++) {
    // The last min(T, len) tokens, left-aligned; positions after them are padding that the
    // causal attention never lets the last real position see.
    const int64_t len = std::min<int64_t>(T, int64_t(seq.size()));
    const size_t start = seq.size() - size_t(len);
    std::fill(inputs.begin(), inputs.end(), 0);
    for (int64_t i = 0; i < len; i++) inputs[size_t(i)] = int32_t(seq[start + size_t(i)]);
    ops->from_host(model.inputs(), inputs.data());
    ops->from_host(model.targets(), targets.data());
    ops->fill(model.loss_accumulator(), 0.0);
    model.forward(*ops, /*compute_grad=*/false, 1.0);
    ops->to_host(row_raw.data(), logits.slice((len - 1) * Vp, Shape{Vp}));
    if (logits.dtype == DType::f32) {
      std::copy_n(reinterpret_cast<const float*>(row_raw.data()), size_t(Vp), row.data());
    } else if (logits.dtype == DType::bf16) {
      const uint16_t* b = reinterpret_cast<const uint16_t*>(row_raw.data());
      for (int64_t i = 0; i < Vp; i++) row[size_t(i)] = bf16_to_float(b[i]);
    } else if (logits.dtype == DType::f64) {
      const double* d = reinterpret_cast<const double*>(row_raw.data());
      for (int64_t i = 0; i < Vp; i++) row[size_t(i)] = float(d[i]);
    } else {
      fail("generate: unexpected logits dtype ", dtype_name(logits.dtype));
    }
    // Only the real vocabulary: the padded rows never enter the softmax.
    uint32_t tok = sample_token(row.data(), cfg.vocab_size, opt.temperature, opt.top_k, rng);
    seq.push_back(tok);
    out.push_back(tok);
    if (on_token) on_token(tok);
    if (opt.stop_at_eot && tok == 50256 && cfg.vocab_size > 50256) break;
  }
  return out;
}

}  // namespace mousse
