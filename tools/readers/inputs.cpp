#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <new>
#include <stdexcept>

#include "input_error.h"
#include "parquet.h"
#include "reader.h"

namespace mousse::tok {

namespace {
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
std::string strip_compression(const std::string& p) {
  for (const char* suf : {".gz", ".zst", ".zstd"})
    if (ends_with(p, suf)) return p.substr(0, p.size() - std::strlen(suf));
  return p;
}
bool is_supported_in_dir(const std::string& p) {
  std::string base = strip_compression(p);
  for (const char* suf : {".parquet", ".jsonl", ".json", ".ndjson", ".txt"})
    if (ends_with(base, suf)) return true;
  return false;
}
}  // namespace

InputFormat detect_format(const std::string& path) {
  if (ends_with(path, ".parquet")) return InputFormat::kParquet;
  std::string base = strip_compression(path);
  if (ends_with(base, ".jsonl") || ends_with(base, ".json") || ends_with(base, ".ndjson")) return InputFormat::kJsonl;
  return InputFormat::kText;
}

namespace {
// What the readers check is reported by them, with the file and the position; this turns anything
// else that escapes (running out of memory, above all) into the same kind of message.
[[noreturn]] void rethrow_as_input_error(const std::string& path, const std::string& where) {
  try {
    throw;
  } catch (const InputError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw InputError(path, where, "out of memory while reading the file");
  } catch (const std::length_error& e) {
    throw InputError(path, where, std::string("a size in the file is too large to allocate (") + e.what() + ")");
  } catch (const std::exception& e) {
    throw InputError(path, where, e.what());
  }
}

class GuardedReader final : public DocReader {
 public:
  GuardedReader(std::string path, std::unique_ptr<DocReader> inner) : path_(std::move(path)), inner_(std::move(inner)) {}
  bool read(DocBatch& batch, size_t max_bytes) override {
    try {
      return inner_->read(batch, max_bytes);
    } catch (...) {
      rethrow_as_input_error(path_, "byte offset " + std::to_string(inner_->consumed()));
    }
  }
  uint64_t consumed() const override { return inner_->consumed(); }
  uint64_t total() const override { return inner_->total(); }
  uint64_t skipped() const override { return inner_->skipped(); }

 private:
  std::string path_;
  std::unique_ptr<DocReader> inner_;
};
}  // namespace

std::unique_ptr<DocReader> open_reader(const std::string& path, InputFormat fmt, const ReaderOptions& opt) {
  if (fmt == InputFormat::kAuto) fmt = detect_format(path);
  std::unique_ptr<DocReader> r;
  try {
    switch (fmt) {
      case InputFormat::kParquet: r = open_parquet(path, opt); break;
      case InputFormat::kJsonl: r = open_jsonl(path, opt); break;
      default: r = open_text(path, opt); break;
    }
  } catch (...) {
    rethrow_as_input_error(path, "");
  }
  return guard_reader(path, std::move(r));
}

std::unique_ptr<DocReader> guard_reader(const std::string& path, std::unique_ptr<DocReader> inner) {
  return std::make_unique<GuardedReader>(path, std::move(inner));
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const std::string& in : inputs) {
    struct stat st;
    if (stat(in.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        std::vector<std::string> files;
        for (auto& e : fs::recursive_directory_iterator(in, fs::directory_options::follow_directory_symlink))
          if (e.is_regular_file() && is_supported_in_dir(e.path().string())) files.push_back(e.path().string());
        std::sort(files.begin(), files.end());
        if (files.empty()) throw std::runtime_error(in + ": directory holds no .parquet, .jsonl[.gz|.zst] or .txt files");
        out.insert(out.end(), files.begin(), files.end());
      } else {
        out.push_back(in);
      }
      continue;
    }
    if (in.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      int rc = glob(in.c_str(), 0, nullptr, &g);
      std::vector<std::string> files;
      if (rc == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) files.push_back(g.gl_pathv[i]);
      globfree(&g);
      if (files.empty()) throw std::runtime_error(in + ": pattern matches no files");
      std::sort(files.begin(), files.end());
      out.insert(out.end(), files.begin(), files.end());
      continue;
    }
    throw std::runtime_error(in + ": " + errno_message());
  }
  return out;
}

}  // namespace mousse::tok
