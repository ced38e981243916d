// Where the programs find the GPT-2 vocabulary (Gpt2Tokenizer::find_vocab_dir, used by
// `mousse sample` and mousse-tokenize): --vocab, then $MOUSSE_GPT2_DIR, then data/gpt2 in the
// working directory, then the shared test data; every failure says how to get the files.
// Each case works in a fresh temporary tree and restores the working directory and the
// environment variable afterwards.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include "gpt2_tokenizer.h"

using namespace mousse::tok;
namespace fs = std::filesystem;

namespace {

// A fresh directory tree under the system's temporary folder; the case runs inside
// `root/work/here` so that neither ../shared nor ../../shared exists unless the case makes it.
struct Sandbox {
  fs::path root, cwd;
  fs::path old_cwd = fs::current_path();
  std::optional<std::string> old_env;

  Sandbox() {
    std::random_device rd;
    std::mt19937_64 rng(rd());
    root = fs::temp_directory_path() / ("mousse_vocab_" + std::to_string(rng()));
    cwd = root / "work" / "here";
    fs::create_directories(cwd);
    if (const char* e = std::getenv("MOUSSE_GPT2_DIR")) old_env = e;
    ::unsetenv("MOUSSE_GPT2_DIR");
    fs::current_path(cwd);
  }
  ~Sandbox() {
    fs::current_path(old_cwd);
    if (old_env) ::setenv("MOUSSE_GPT2_DIR", old_env->c_str(), 1);
    else ::unsetenv("MOUSSE_GPT2_DIR");
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  // Makes `dir` (relative to the case's working directory) holding the named vocabulary files.
  static std::string make(const fs::path& dir, bool encoder = true, bool bpe = true) {
    fs::create_directories(dir);
    if (encoder) std::ofstream(dir / "encoder.json") << "{}";
    if (bpe) std::ofstream(dir / "vocab.bpe") << "#version: 0.2\n";
    return dir.string();
  }
};

std::string error_of(const std::string& explicit_dir) {
  try {
    const std::string got = Gpt2Tokenizer::find_vocab_dir(explicit_dir);
    FAIL("expected an error, got the directory " << got);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("vocabulary lookup: --vocab first, then MOUSSE_GPT2_DIR, then data/gpt2", "[vocab]") {
  Sandbox box;
  const std::string flag = Sandbox::make("flag_dir");
  const std::string env = Sandbox::make(box.root / "env_dir");
  Sandbox::make("data/gpt2");
  Sandbox::make(box.root / "work" / "shared" / "data" / "gpt2");  // the tests' fallback

  ::setenv("MOUSSE_GPT2_DIR", env.c_str(), 1);
  CHECK(Gpt2Tokenizer::find_vocab_dir(flag) == flag);
  CHECK(Gpt2Tokenizer::find_vocab_dir("") == env);
  ::setenv("MOUSSE_GPT2_DIR", "", 1);  // set but empty counts as unset
  CHECK(Gpt2Tokenizer::find_vocab_dir("") == "data/gpt2");
  ::unsetenv("MOUSSE_GPT2_DIR");
  CHECK(Gpt2Tokenizer::find_vocab_dir("") == "data/gpt2");
  fs::remove_all("data");
  CHECK(Gpt2Tokenizer::find_vocab_dir("") == "../shared/data/gpt2");
}

TEST_CASE("vocabulary lookup: the shared test data two levels up (a build directory)", "[vocab]") {
  Sandbox box;
  Sandbox::make(box.root / "shared" / "data" / "gpt2");
  CHECK(Gpt2Tokenizer::find_vocab_dir("") == "../../shared/data/gpt2");
}

TEST_CASE("vocabulary lookup: an incomplete location is an error naming it and the file",
          "[vocab]") {
  Sandbox box;
  Sandbox::make(box.root / "work" / "shared" / "data" / "gpt2");  // must not be used instead
  const bool encoder = GENERATE(false, true);
  INFO("encoder.json present: " << encoder);
  const std::string missing = encoder ? "vocab.bpe" : "encoder.json";

  SECTION("--vocab") {
    const std::string dir = Sandbox::make("partial", encoder, !encoder);
    const std::string e = error_of(dir);
    CHECK(has(e, "--vocab " + dir));
    CHECK(has(e, "lacks " + missing));
    CHECK(has(e, "scripts/get-gpt2-vocab.sh"));
  }
  SECTION("MOUSSE_GPT2_DIR") {
    const std::string dir = Sandbox::make(box.root / "env_partial", encoder, !encoder);
    Sandbox::make("data/gpt2");  // complete, but the variable named another directory
    ::setenv("MOUSSE_GPT2_DIR", dir.c_str(), 1);
    const std::string e = error_of("");
    CHECK(has(e, "MOUSSE_GPT2_DIR=" + dir));
    CHECK(has(e, "lacks " + missing));
    CHECK(has(e, "scripts/get-gpt2-vocab.sh"));
  }
  SECTION("data/gpt2 (an interrupted download)") {
    Sandbox::make("data/gpt2", encoder, !encoder);
    const std::string e = error_of("");
    CHECK(has(e, "data/gpt2"));
    CHECK(has(e, "lacks " + missing));
    CHECK(has(e, "scripts/get-gpt2-vocab.sh"));
  }
  SECTION("a directory that does not exist, or a file") {
    CHECK(has(error_of("no_such_dir"), "--vocab no_such_dir is not a directory"));
    std::ofstream("a_file") << "x";
    ::setenv("MOUSSE_GPT2_DIR", "a_file", 1);
    CHECK(has(error_of(""), "MOUSSE_GPT2_DIR=a_file is not a directory"));
  }
  SECTION("an empty directory") {
    fs::create_directories("empty");
    CHECK(has(error_of("empty"), "lacks encoder.json and vocab.bpe"));
  }
}

TEST_CASE("vocabulary lookup: nothing found says how to get the files", "[vocab]") {
  Sandbox box;
  Sandbox::make(box.root / "work" / "shared" / "data" / "gpt2", true, false);  // incomplete: skipped
  const std::string e = error_of("");
  CHECK(has(e, "not found"));
  CHECK(has(e, "scripts/get-gpt2-vocab.sh"));
  CHECK(has(e, "data/gpt2"));
  CHECK(has(e, "--vocab"));
  CHECK(has(e, "MOUSSE_GPT2_DIR"));
}
