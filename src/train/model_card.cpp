#include "train/model_card.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/params.h"

namespace mousse {

namespace fs = std::filesystem;

double logged_val_loss(const WeightSource& src, int64_t step, std::string* where) {
  if (step < 0 || src.is_hf()) return NAN;
  // A checkpoint sits in <log.dir>/checkpoints by default; log.dir may also be given as is.
  std::vector<fs::path> dirs;
  const json& rc = src.run_config();
  if (rc.is_object() && rc.contains("log") && rc["log"].is_object() && rc["log"].contains("dir") &&
      rc["log"]["dir"].is_string())
    dirs.push_back(rc["log"]["dir"].get<std::string>());
  const fs::path ckpt_dir = fs::path(src.path()).parent_path();
  dirs.push_back(ckpt_dir.parent_path());
  dirs.push_back(ckpt_dir);
  for (const fs::path& d : dirs) {
    std::ifstream in(d / "metrics.jsonl");
    if (!in) continue;
    double loss = NAN;
    std::string line;
    while (std::getline(in, line)) {  // the last record of that step (a resumed run repeats it)
      const json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("type", "") == "eval" && j.contains("step") &&
          j["step"].is_number_integer() && j["step"].get<int64_t>() == step &&
          j.contains("val_loss") && j["val_loss"].is_number())
        loss = j["val_loss"].get<double>();
    }
    if (std::isfinite(loss)) {
      if (where) *where = (d / "metrics.jsonl").string();
      return loss;
    }
  }
  return NAN;
}

namespace {

std::string count(double n) {
  char b[32];
  if (n >= 1e9) std::snprintf(b, sizeof b, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(b, sizeof b, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(b, sizeof b, "%.1fK", n / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", n);
  return b;
}

// A config value for a table cell ("unknown" when absent); '|' would end the cell.
std::string cell(const json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "unknown";
  std::string s = j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return "`" + out + "`";
}

}  // namespace

std::string model_card(const WeightSource& src, DType dtype) {
  const ModelConfig& m = *src.model();
  const json& rc = src.run_config();
  const int64_t C = m.d_model, L = m.n_layer, V = m.vocab_size;
  const double ours = double(2 * V * C + L * 12 * C * C);               // what the model computes with
  const double stored = ours + double(L * (4 * C * C + 2 * C + 2 * m.head_dim()) + C);  // + up, norms
  std::ostringstream o;
  const std::string name = rc.is_object() && rc.contains("run_name") && rc["run_name"].is_string()
                               ? rc["run_name"].get<std::string>() : "mousse model";
  o << "---\nlibrary_name: transformers\npipeline_tag: text-generation\ntags:\n- mousse\n- qwen3\n---\n\n"
    << "# " << name << "\n\n"
    << "A GPT pretrained with Mousse, exported by `mousse export --format hf` as a "
    << "`Qwen3ForCausalLM` that computes exactly the same function.\n\n"
    << "## Architecture\n\n| | |\n|---|---|\n"
    << "| layers | " << L << " |\n"
    << "| width (hidden_size) | " << C << " |\n"
    << "| attention heads | " << m.n_head << " (head_dim " << m.head_dim() << ", no grouped KV) |\n"
    << "| MLP | ReLU², inner width " << 4 * C << " |\n"
    << "| normalisation | RMSNorm without gain (eps 1e-6), pre-norm; QK-Norm per head |\n"
    << "| position encoding | RoPE (rotate-half), base " << m.rope_base << " |\n"
    << "| context | " << m.max_seq_len << " tokens |\n"
    << "| vocabulary | " << V << " (GPT-2 BPE), untied embedding and output head, no biases |\n"
    << "| parameters | " << count(ours) << " (" << count(stored)
    << " as stored here: gate and up both hold the MLP's first matrix, and the norm weights are ones) |\n"
    << "| weights | " << (dtype == DType::bf16 ? "bfloat16 (rounded to nearest even)" : "float32") << " |\n\n"
    << "## How it maps onto Qwen3\n\n| mousse | Qwen3 (`model.layers.{i}.` inside a block) |\n|---|---|\n"
    << "| `wte` (first " << V << " rows) | `model.embed_tokens.weight` |\n"
    << "| `blocks.{i}.attn.{q,k,v,o}` | `self_attn.{q,k,v,o}_proj.weight` |\n"
    << "| `blocks.{i}.mlp.fc` | `mlp.gate_proj.weight` **and** `mlp.up_proj.weight` |\n"
    << "| `blocks.{i}.mlp.proj` | `mlp.down_proj.weight` |\n"
    << "| `lm_head` (first " << V << " rows) | `lm_head.weight` |\n"
    << "| RMSNorm (no gain) | `input_layernorm`, `post_attention_layernorm`, `self_attn.q_norm`, "
       "`self_attn.k_norm`, `model.norm`: all weights 1 |\n\n"
    << "Qwen3's MLP computes `down(act(gate(x)) * up(x))`. With `hidden_act: relu` and "
       "`gate = up = fc` this is `relu(a) * a = relu(a)²`, our ReLU² MLP, exactly. The price is a "
       "duplicated GEMM at inference (the MLP's first matrix is applied twice) and its weights stored "
       "twice. The padded vocabulary rows of our embedding and output head are dropped: they never "
       "produce a logit.\n\n"
    << "Tools that implement Qwen3 with a fixed SiLU MLP instead of reading `hidden_act` do not "
       "compute this model: vLLM's own Qwen3 refuses `relu` (its "
       "`--model-impl transformers` backend uses the transformers code this export is tested with), and llama.cpp's Qwen3 graph always uses SiLU, so a "
       "GGUF converted from this directory would silently give other outputs.\n\n";

  o << "## Training\n\n";
  if (!rc.is_object()) {
    o << "Unknown: these weights carry no training config.";
    if (src.step() >= 0) o << " Optimizer steps: " << src.step() << ".";
    o << "\n\n";
  } else {
    const json batch = rc.value("batch", json::object());
    const int64_t step = src.step();
    std::string tokens = "unknown";
    if (step >= 0 && batch.contains("global_tokens") && batch["global_tokens"].is_number_integer()) {
      const double t = double(step) * double(batch["global_tokens"].get<int64_t>());
      tokens = count(t) + " (" + std::to_string(step) + " steps × " +
               std::to_string(batch["global_tokens"].get<int64_t>()) + " tokens)";
    }
    std::string where;
    const double loss = logged_val_loss(src, step, &where);
    char loss_s[64];
    std::snprintf(loss_s, sizeof loss_s, "%.4f", loss);
    const json data = rc.value("data", json::object());
    o << "| | |\n|---|---|\n"
      << "| optimizer steps | " << (step >= 0 ? std::to_string(step) : "unknown") << " of "
      << (rc.contains("steps") ? rc["steps"].dump() : "unknown") << " planned |\n"
      << "| tokens seen | " << tokens << " |\n"
      << "| batch | " << cell(batch, "global_tokens") << " tokens per step, sequences of "
      << cell(batch, "seq_len") << " |\n"
      << "| optimizer | " << cell(rc, "optimizer") << " |\n"
      << "| schedule | " << cell(rc, "schedule") << " |\n"
      << "| training data | " << cell(data, "train") << " |\n"
      << "| validation data | " << cell(data, "val") << " |\n"
      << "| precision | " << cell(rc, "precision") << " on " << cell(rc, "device") << " |\n"
      << "| seed | " << cell(rc, "seed") << " |\n"
      << "| final validation loss | "
      << (std::isfinite(loss) ? std::string(loss_s) + " at step " + std::to_string(step) +
                                    " (mean cross-entropy, nats per token)"
                              : "unknown (no evaluation at this step found in the run's metrics.jsonl)")
      << " |\n\n";
  }
  o << "## Use\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
       "tokenizer = AutoTokenizer.from_pretrained(\"PATH\")\n"
       "model = AutoModelForCausalLM.from_pretrained(\"PATH\")\n"
       "ids = tokenizer(\"Hello\", return_tensors=\"pt\").input_ids\n"
       "print(tokenizer.decode(model.generate(ids, max_new_tokens=32, do_sample=False)[0]))\n```\n\n"
       "Back into mousse: `\"init_from\": \"PATH\"` in a training config, or `mousse sample -w PATH`; "
       "both check that the directory still holds one of our models (ReLU, unit norm weights, "
       "gate = up, no biases).\n";
  return o.str();
}

}  // namespace mousse
