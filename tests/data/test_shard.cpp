// llm.c shard format: header validation, errors, glob expansion, the writer and the reader.
#include <catch2/catch.hpp>

#include <filesystem>

#include "core/error.h"
#include "data/shard.h"
#include "data_test_util.h"

using namespace mousse;
using mousse_test::TempDir;
using Catch::Matchers::Contains;

namespace fs = std::filesystem;

TEST_CASE("shard: write then read header and tokens", "[data][shard]") {
  TempDir dir;
  auto tokens = mousse_test::random_tokens(1000, 1);
  const std::string p = dir.file("a.bin");
  write_shard(p, tokens);
  CHECK(fs::file_size(p) == 1024 + 2 * 1000);
  CHECK_FALSE(fs::exists(p + ".tmp." + std::to_string(::getpid())));  // temp file renamed away

  ShardHeader h = read_shard_header(p);
  CHECK(h.path == p);
  CHECK(h.num_tokens == 1000);

  ShardReader r(h);
  std::vector<uint16_t> got(100);
  r.read(900, 100, got.data());
  CHECK(std::equal(got.begin(), got.end(), tokens.begin() + 900));
  r.read(0, 1, got.data());
  CHECK(got[0] == tokens[0]);

  // Header words beyond the first three are zero, as llm.c writes them.
  std::ifstream f(p, std::ios::binary);
  int32_t header[256];
  f.read(reinterpret_cast<char*>(header), sizeof header);
  CHECK(header[0] == 20240520);
  CHECK(header[1] == 1);
  CHECK(header[2] == 1000);
  for (int i = 3; i < 256; ++i) CHECK(header[i] == 0);

  // An empty shard is a valid file (the loader rejects it as too small, not the format).
  write_shard(dir.file("empty.bin"), std::vector<uint16_t>{});
  CHECK(read_shard_header(dir.file("empty.bin")).num_tokens == 0);
}

TEST_CASE("shard: errors name the file and what was expected", "[data][shard]") {
  TempDir dir;
  auto tokens = mousse_test::random_tokens(64, 2);

  SECTION("missing file") {
    CHECK_THROWS_WITH(read_shard_header(dir.file("nope.bin")),
                      Contains(dir.file("nope.bin")) && Contains("not found"));
  }
  SECTION("bad magic") {
    const std::string p = dir.file("magic.bin");
    write_shard(p, tokens);
    mousse_test::patch_int32(p, 0, 12345);
    CHECK_THROWS_AS(read_shard_header(p), mousse::Error);
    CHECK_THROWS_WITH(read_shard_header(p), Contains(p) && Contains("magic") &&
                                                Contains("20240520") && Contains("12345"));
  }
  SECTION("llm.c Llama-3 shard is recognised") {
    const std::string p = dir.file("llama.bin");
    write_shard(p, tokens);
    mousse_test::patch_int32(p, 0, 20240801);
    CHECK_THROWS_WITH(read_shard_header(p), Contains(p) && Contains("Llama-3"));
  }
  SECTION("bad version") {
    const std::string p = dir.file("version.bin");
    write_shard(p, tokens);
    mousse_test::patch_int32(p, 4, 7);
    CHECK_THROWS_WITH(read_shard_header(p),
                      Contains(p) && Contains("version") && Contains("expected 1") && Contains("7"));
  }
  SECTION("truncated file") {
    const std::string p = dir.file("trunc.bin");
    write_shard(p, tokens);
    fs::resize_file(p, 1024 + 2 * 64 - 1);
    CHECK_THROWS_WITH(read_shard_header(p), Contains(p) && Contains("size mismatch") &&
                                                Contains("1152") && Contains("1151") &&
                                                Contains("truncated"));
  }
  SECTION("trailing data") {
    const std::string p = dir.file("long.bin");
    write_shard(p, tokens);
    fs::resize_file(p, 1024 + 2 * 64 + 2);
    CHECK_THROWS_WITH(read_shard_header(p), Contains(p) && Contains("size mismatch"));
  }
  SECTION("header counts more tokens than the file holds") {
    const std::string p = dir.file("count.bin");
    write_shard(p, tokens);
    mousse_test::patch_int32(p, 8, 65);
    CHECK_THROWS_WITH(read_shard_header(p), Contains(p) && Contains("65 tokens"));
  }
  SECTION("smaller than a header") {
    const std::string p = dir.file("tiny.bin");
    { std::ofstream(p, std::ios::binary) << "hello"; }
    CHECK_THROWS_WITH(read_shard_header(p), Contains(p) && Contains("1024-byte"));
  }
  SECTION("a directory is not a shard") {
    CHECK_THROWS_WITH(read_shard_header(dir.path), Contains(dir.path));
  }
}

TEST_CASE("shard: expand_globs sorts, concatenates, and errors on no match", "[data][shard]") {
  TempDir dir;
  for (const char* name : {"x_train_000002.bin", "x_train_000000.bin", "x_train_000001.bin",
                           "x_val_000000.bin"})
    write_shard(dir.file(name), std::vector<uint16_t>{1, 2, 3});

  auto files = expand_globs({dir.file("x_train_*.bin")});
  REQUIRE(files.size() == 3);
  CHECK(files[0] == dir.file("x_train_000000.bin"));
  CHECK(files[1] == dir.file("x_train_000001.bin"));
  CHECK(files[2] == dir.file("x_train_000002.bin"));

  // Patterns keep their order; a file matched twice is listed once.
  files = expand_globs({dir.file("x_val_*.bin"), dir.file("x_*.bin")});
  REQUIRE(files.size() == 4);
  CHECK(files[0] == dir.file("x_val_000000.bin"));
  CHECK(files[1] == dir.file("x_train_000000.bin"));
  CHECK(files[3] == dir.file("x_train_000002.bin"));

  // A plain path works too.
  CHECK(expand_globs({dir.file("x_val_000000.bin")}).size() == 1);

  CHECK_THROWS_WITH(expand_globs({dir.file("y_*.bin")}),
                    Contains("no files match") && Contains(dir.file("y_*.bin")));
  CHECK_THROWS_WITH(expand_globs({dir.file("x_train_000000.bin"), dir.file("missing.bin")}),
                    Contains(dir.file("missing.bin")) && Contains("not found"));
  CHECK_THROWS_AS(expand_globs({}), mousse::Error);
}
