#include "train/run_config.h"

#include <fstream>
#include <limits>
#include <sstream>

namespace mousse {

int64_t BatchConfig::grad_accum(int world_size) const {
  return global_tokens / (micro_batch * seq_len) / world_size;
}

bool BatchConfig::splits_over(int world_size) const {
  // global % (mb·T·W) == 0 without forming mb·T·W, which can overflow for a large --np.
  const int64_t per_micro = micro_batch * seq_len;
  return world_size >= 1 && global_tokens % per_micro == 0 &&
         (global_tokens / per_micro) % world_size == 0;
}

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot open config ", path, " (does the file exist?)");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  // nlohmann stops at a NUL byte as at the end of the text: what follows would go unread.
  if (text.find('\0') != std::string::npos)
    fail(path, ": not valid JSON: a NUL byte at offset ", text.find('\0'));
  try {
    return json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::out_of_range& e) {  // 1e400: beyond a double
    fail(path, ": not valid JSON: ", json_error_text(e), " (numbers must fit a double)");
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON: ", json_error_text(e));
  }
}

void apply_overrides(json& config, const std::vector<std::string>& sets, const std::string& file) {
  for (const std::string& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      fail("--set '", s, "': expected key.path=value (for example optimizer.matrix.lr=0.02)");
    try {  // config.json and the logs are JSON: keys and strings must be UTF-8
      (void)json(s).dump();
    } catch (const json::type_error&) {
      fail("--set: the argument is not valid UTF-8 (keys and values must be UTF-8 text)");
    }
    std::string path = s.substr(0, eq), value = s.substr(eq + 1);
    json v;
    try {
      v = json::parse(value);
    } catch (const json::out_of_range& e) {  // 1e400: a number, but beyond a double
      fail("--set '", s, "': key '", path, "': ", value, " is beyond the range of a number (a ",
           "double, up to about 1.8e308): ", json_error_text(e));
    } catch (const json::parse_error&) {
      v = value;  // a bare word is a string
    }
    json* node = &config;
    std::stringstream keys(path);
    std::string key, walked;
    std::vector<std::string> parts;
    while (std::getline(keys, key, '.')) parts.push_back(key);
    for (size_t i = 0; i < parts.size(); i++) {
      if (parts[i].empty()) fail("--set '", s, "': empty key in '", path, "'");
      walked += (walked.empty() ? "" : ".") + parts[i];
      if (node->is_null()) *node = json::object();  // a section the file leaves out
      if (!node->is_object())
        fail("--set '", s, "': '", walked, "' is inside a non-object in ", file);
      if (i + 1 == parts.size()) (*node)[parts[i]] = v;
      else node = &(*node)[parts[i]];
    }
  }
}

RunConfig parse_run_config(const json& j, const std::string& file) {
  RunConfig rc;
  rc.file = file;
  rc.raw = j;
  ConfigNode top(j, "", file);
  rc.run_name = top.string("run_name", rc.run_name);
  rc.model = model_config_from(top.child("model", true));

  ConfigNode data = top.child("data", true);
  rc.data.train = data.strings("train", {});
  if (rc.data.train.empty()) data.error("train", "missing; expected glob(s) of .bin shards");
  rc.data.val = data.strings("val", {});
  rc.data.shuffle = data.boolean("shuffle", rc.data.shuffle);
  rc.data.prefetch = int(data.integer("prefetch", rc.data.prefetch, {1, 1024}));
  data.finish();

  ConfigNode batch = top.child("batch", true);
  // micro_batch × seq_len <= 2^31 · 2^24 (model.max_seq_len's bound) cannot overflow.
  rc.batch.micro_batch = batch.integer("micro_batch", {1, kMaxInt32});
  rc.batch.seq_len = batch.integer("seq_len", rc.model.max_seq_len, {1, int64_t(1) << 24});
  if (rc.batch.seq_len > rc.model.max_seq_len)
    batch.error("seq_len", std::to_string(rc.batch.seq_len) + " exceeds model.max_seq_len = " +
                               std::to_string(rc.model.max_seq_len));
  rc.batch.global_tokens = batch.integer(
      "global_tokens", rc.batch.micro_batch * rc.batch.seq_len, {1, kMaxCount});
  if (rc.batch.global_tokens % (rc.batch.micro_batch * rc.batch.seq_len) != 0)
    batch.error("global_tokens", std::to_string(rc.batch.global_tokens) +
                                     " is not a multiple of micro_batch × seq_len = " +
                                     std::to_string(rc.batch.micro_batch * rc.batch.seq_len));
  batch.finish();

  rc.optimizer = top.child("optimizer", true).raw();
  rc.schedule = schedule_from(top.child("schedule"));
  rc.steps = top.integer("steps", {1, kMaxCount});
  // The tokens trained (steps × global_tokens) are counted in int64.
  if (rc.steps > kMaxCount / rc.batch.global_tokens)
    top.error("steps", std::to_string(rc.steps) + " steps × batch.global_tokens = " +
                           std::to_string(rc.batch.global_tokens) + " exceeds 2^62 tokens");

  ConfigNode eval = top.child("eval");
  rc.eval.every = eval.integer("every", rc.eval.every, {0, kMaxCount});
  rc.eval.tokens = eval.integer("tokens", rc.eval.tokens, {0, kMaxCount});
  eval.finish();

  ConfigNode log = top.child("log");
  rc.log.dir = log.string("dir", "runs/" + rc.run_name);
  rc.log.every = log.integer("every", rc.log.every, {1, kMaxCount});
  rc.log.diagnostics_every =
      log.integer("diagnostics_every", rc.log.diagnostics_every, {0, kMaxCount});
  log.finish();

  ConfigNode ckpt = top.child("checkpoint");
  rc.checkpoint.every = ckpt.integer("every", rc.checkpoint.every, {0, kMaxCount});
  rc.checkpoint.keep = int(ckpt.integer("keep", rc.checkpoint.keep, {1, kMaxInt32}));
  rc.checkpoint.dir = ckpt.string("dir", rc.log.dir + "/checkpoints");
  ckpt.finish();

  rc.seed = uint64_t(
      top.integer("seed", int64_t(rc.seed), {0, std::numeric_limits<int64_t>::max()}));
  rc.device = top.choice("device", rc.device, {"cpu", "cuda", "auto"});
  rc.precision = top.choice("precision", rc.precision, {"auto", "f32", "bf16", "f64"});
  rc.init_from = top.string("init_from", "");
  rc.recompute = top.choice("recompute", rc.recompute, {"none", "mlp", "norms", "all"});
  top.finish();
  return rc;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& sets) {
  json j = read_json_file(path);
  apply_overrides(j, sets, path);
  return parse_run_config(j, path);
}

json RunConfig::resolved() const {
  json m = {{"preset", model.preset},         {"n_layer", model.n_layer},
            {"n_head", model.n_head},         {"d_model", model.d_model},
            {"vocab_size", model.vocab_size}, {"padded_vocab", model.padded_vocab},
            {"max_seq_len", model.max_seq_len}, {"rope_base", model.rope_base}};
  return {{"run_name", run_name},
          {"model", m},
          {"data", {{"train", data.train}, {"val", data.val}, {"shuffle", data.shuffle},
                    {"prefetch", data.prefetch}}},
          {"batch", {{"global_tokens", batch.global_tokens}, {"micro_batch", batch.micro_batch},
                     {"seq_len", batch.seq_len}}},
          {"optimizer", optimizer},
          {"schedule", schedule.to_json()},
          {"steps", steps},
          {"eval", {{"every", eval.every}, {"tokens", eval.tokens}}},
          {"checkpoint", {{"every", checkpoint.every}, {"keep", checkpoint.keep},
                          {"dir", checkpoint.dir}}},
          {"log", {{"dir", log.dir}, {"every", log.every},
                   {"diagnostics_every", log.diagnostics_every}}},
          {"seed", seed},
          {"device", device},
          {"precision", precision},
          {"init_from", init_from},
          {"recompute", recompute}};
}

Precision RunConfig::precision_on(Device device) const {
  Precision p;
  if (precision == "auto") {
    p.activation = device == Device::cuda ? DType::bf16 : DType::f32;
  } else if (precision == "f64") {
    if (device != Device::cpu)
      fail(file, ": key 'precision': f64 runs only on the cpu device (a reference mode)");
    p.param = p.activation = DType::f64;
  } else if (precision == "bf16") {
    if (device != Device::cuda)
      fail(file, ": key 'precision': bf16 needs the cuda device; use f32 on cpu");
    p.activation = DType::bf16;
  }
  return p;
}

}  // namespace mousse
