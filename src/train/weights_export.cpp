#include "train/weights_export.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/safetensors.h"
#include "model/hf_format.h"
#include "train/hf_tokenizer.h"
#include "train/model_card.h"

namespace mousse {

namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& path, const std::string& content) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail("cannot write ", path.string(), ": ", std::strerror(errno));
  const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() &&
                  std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const int err = errno;
  if (std::fclose(f) != 0 || !ok)
    fail("writing ", path.string(), " failed (disk full?): ", std::strerror(ok ? errno : err));
}

void require_model(const WeightSource& src) {
  if (!src.model())
    fail(src.path(), ": holds no model config (neither a mousse checkpoint nor a file written by ",
         "`mousse export`), so its tensors cannot be checked against a model");
}

void check_dtype(DType dt) {
  if (dt != DType::f32 && dt != DType::bf16)
    fail("export dtype ", dtype_name(dt), ": expected f32 or bf16");
}

// The source's canonical weight `spec` as f32.
void read_f32(const WeightSource& src, const ParamSpec& spec, float* dst) {
  src.read(spec.name, DType::f32, Shape{spec.rows, spec.cols}, dst);
}

}  // namespace

void export_safetensors(const WeightSource& src, const std::string& out, DType dtype,
                        bool overwrite) {
  require_model(src);
  check_dtype(dtype);
  std::error_code ec;
  if (fs::is_directory(out, ec)) fail("--out ", out, " is a directory; give a .safetensors file path");
  if (fs::exists(out, ec) && !overwrite)
    fail(out, " exists; pass --overwrite to replace it, or choose another path");
  const ModelConfig& m = *src.model();
  SafeTensorsWriter w;
  for (const ParamSpec& s : param_specs(m))
    w.add(s.name, dtype, Shape{s.rows, s.cols}, [&src, s, dtype](void* dst) {
      src.read(s.name, dtype, Shape{s.rows, s.cols}, dst);
    });
  const json model = {{"preset", m.preset},         {"n_layer", m.n_layer},
                      {"n_head", m.n_head},         {"d_model", m.d_model},
                      {"vocab_size", m.vocab_size}, {"padded_vocab", m.padded_vocab},
                      {"max_seq_len", m.max_seq_len}, {"rope_base", m.rope_base}};
  w.set_metadata("model", model.dump());
  if (src.step() >= 0) w.set_metadata("step", std::to_string(src.step()));
  w.set_metadata("format", "pt");
  w.write_atomic(out);
}

void export_hf(const WeightSource& src, const std::string& out_dir, const HfExportOptions& opt) {
  require_model(src);
  check_dtype(opt.dtype);
  const ModelConfig& m = *src.model();
  if (m.vocab_size != 50257)
    fail(src.path(), ": vocab_size is ", m.vocab_size, ", but the Hugging Face export ships ",
         "GPT-2's tokenizer (50257 tokens), which would not match this model");
  // Everything that can fail on bad input first: the destination, then the vocabulary.
  fs::path out = fs::absolute(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/"
  std::error_code ec;
  bool replace = false;
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out, ec)) fail(out_dir, " exists and is not a directory");
    const bool empty = fs::is_empty(out, ec);
    if (!empty && !opt.overwrite)
      fail(out_dir, " exists and is not empty; pass --overwrite to replace an earlier export, ",
           "or choose a new directory");
    if (!empty && !fs::exists(out / hf::kConfigFile, ec))
      fail(out_dir, " holds files but no ", hf::kConfigFile, ": not an earlier export, so ",
           "--overwrite does not replace it; choose a new directory");
    replace = true;
  }
  const std::string vocab_dir = find_gpt2_vocab_dir(opt.vocab_dir);
  const auto tokenizer = gpt2_tokenizer_files(vocab_dir, m.max_seq_len);

  // Written under a temporary name next to the destination, then renamed into place.
  const fs::path parent = out.parent_path();
  const std::string pid = std::to_string(getpid());
  const fs::path tmp = parent / ("." + out.filename().string() + ".tmp." + pid);
  const fs::path old = parent / ("." + out.filename().string() + ".old." + pid);
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail("cannot create ", tmp.string(), ": ", ec.message());
  try {
    write_file(tmp / hf::kConfigFile, hf::config_json(m, opt.dtype).dump(2) + "\n");
    const json gen = {{"bos_token_id", hf::kEos}, {"eos_token_id", hf::kEos}};
    write_file(tmp / "generation_config.json", gen.dump(2) + "\n");
    for (const auto& [name, content] : tokenizer) write_file(tmp / name, content);
    write_file(tmp / "README.md", model_card(src, opt.dtype));
    hf::write_weights((tmp / hf::kWeightsFile).string(), m, opt.dtype,
                      [&src](const ParamSpec& s, float* dst) { read_f32(src, s, dst); });
    if (replace) {
      fs::rename(out, old);
      fs::rename(tmp, out);
      fs::remove_all(old, ec);
    } else {
      fs::rename(tmp, out);
    }
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    if (replace && !fs::exists(out, ec) && fs::exists(old, ec)) fs::rename(old, out, ec);
    fail("cannot put the export in place at ", out_dir, ": ", e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace mousse
