// The start-up scan of token ids (data/token_scan.h) and shards that are not regular files.
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <chrono>
#include <future>

#include "core/error.h"
#include "data/data_loader.h"
#include "data/token_scan.h"
#include "data_test_util.h"
#include "test_errors.h"

using namespace mousse;
using namespace mousse_test;

namespace {

// Fresh random inputs every run; the seed is printed with a failure.
uint64_t fresh_seed() { return (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}(); }

std::vector<ShardHeader> headers(const TempDir& dir, size_t n) {
  std::vector<ShardHeader> out;
  for (size_t i = 0; i < n; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "d_%06zu.bin", i);
    out.push_back(read_shard_header(dir.file(name)));
  }
  return out;
}

std::string scan_error(const std::vector<ShardHeader>& h, int vocab, int part, int parts) {
  return error_of([&] { check_token_ids(h, vocab, part, parts); });
}

}  // namespace

TEST_CASE("token scan: the largest id, every token counted once over the parts", "[data][scan]") {
  TempDir dir;
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  // Sizes around the 2^20-token read block: one block, a block and a bit, several blocks.
  const std::vector<int64_t> sizes = {int64_t(1) + int64_t(rng() % 1000), (int64_t(1) << 20) + 7,
                                      3 * (int64_t(1) << 20) - 5};
  auto tokens = write_random_shards(dir, sizes, rng() % 1000 + 1);
  int expect_max = 0;
  int64_t total = 0;
  for (auto& t : tokens) {
    for (uint16_t v : t) expect_max = std::max(expect_max, int(v));
    total += int64_t(t.size());
  }
  auto h = headers(dir, sizes.size());
  for (int parts : {1, 2, 3}) {
    int64_t seen = 0;
    int max_id = -1;
    for (int part = 0; part < parts; ++part) {
      TokenScan s = check_token_ids(h, 50257, part, parts);
      seen += s.tokens;
      max_id = std::max(max_id, s.max_id);
      CHECK(s.seconds >= 0);
    }
    CHECK(seen == total);
    CHECK(max_id == expect_max);
  }
  // A vocabulary just above the largest id passes; at the largest id it fails.
  CHECK_NOTHROW(check_token_ids(h, expect_max + 1));
  CHECK_THROWS_WITH(check_token_ids(h, expect_max), Catch::Contains("out of range"));
}

TEST_CASE("token scan: the first bad token anywhere is found and named", "[data][scan]") {
  TempDir dir;
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const int vocab = 50257;
  const int64_t n = 2 * (int64_t(1) << 20) + 333;  // 3 read blocks
  for (int trial = 0; trial < 6; ++trial) {
    auto t = random_tokens(n, rng());
    // Bad ids at random places (block edges included), the first one is the one named.
    std::vector<int64_t> where = {int64_t(rng() % uint64_t(n)), int64_t(rng() % uint64_t(n))};
    if (trial == 0) where = {0};
    if (trial == 1) where = {n - 1};
    if (trial == 2) where = {(int64_t(1) << 20) - 1, int64_t(1) << 20};
    for (int64_t w : where) t[size_t(w)] = uint16_t(vocab + int(rng() % (65536 - vocab)));
    const int64_t first = *std::min_element(where.begin(), where.end());
    write_shard(dir.file("d_000000.bin"), t);
    write_shard(dir.file("d_000001.bin"), random_tokens(5000, rng()));  // a good shard before it
    std::vector<ShardHeader> h = {read_shard_header(dir.file("d_000001.bin")),
                                  read_shard_header(dir.file("d_000000.bin"))};
    const std::string msg = scan_error(h, vocab, 0, 1);
    INFO("bad at " << first << ": " << msg);
    CHECK_THAT(msg, Catch::Contains("d_000000.bin") &&
                        Catch::Contains("token id " + std::to_string(t[size_t(first)])) &&
                        Catch::Contains("token position " + std::to_string(first) + " ") &&
                        Catch::Contains("vocab_size 50257"));
    // Split over ranks: exactly the part holding the first bad token reports it (a later bad
    // token may make another part fail too, never with this position).
    for (int parts : {2, 3}) {
      int reported = 0;
      for (int part = 0; part < parts; ++part) {
        const bool mine = first >= n * part / parts && first < n * (part + 1) / parts;
        const std::string e = scan_error(h, vocab, part, parts);
        if (mine) CHECK_THAT(e, Catch::Contains("token position " + std::to_string(first) + " "));
        reported += e.find("token position " + std::to_string(first) + " ") != std::string::npos;
      }
      CHECK(reported == 1);
    }
  }
}

TEST_CASE("token scan: a shard truncated before the scan is an error, not a crash", "[data][scan]") {
  TempDir dir;
  write_shard(dir.file("d_000000.bin"), random_tokens(100000, fresh_seed()));
  auto h = headers(dir, 1);
  std::filesystem::resize_file(dir.file("d_000000.bin"), 1024 + 2 * 50000);
  CHECK_THROWS_WITH(check_token_ids(h, 50257), Catch::Contains("d_000000.bin"));
}

TEST_CASE("shards that are not regular files are refused without blocking", "[data][shard]") {
  TempDir dir;
  const std::string fifo = dir.file("pipe.bin");
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  std::filesystem::create_directories(dir.file("folder.bin"));
  struct Case {
    std::string path, kind;
  };
  const std::vector<Case> cases = {{fifo, "FIFO"}, {dir.file("folder.bin"), "directory"},
                                   {"/dev/null", "character device"}};
  for (const Case& c : cases) {
    INFO(c.path);
    // open() of a FIFO without a writer would block forever: run it where a hang is seen.
    auto header = std::async(std::launch::async, [&] {
      try {
        read_shard_header(c.path);
      } catch (const Error& e) {
        return std::string(e.what());
      }
      return std::string("no error");
    });
    REQUIRE(header.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    const std::string msg = header.get();
    CHECK_THAT(msg, Catch::Contains(c.path) && Catch::Contains(c.kind) &&
                        Catch::Contains("not a regular file"));
  }
  // Through the loader, as a glob match among good shards.
  write_random_shards(dir, {3000}, fresh_seed() % 1000 + 1);
  DataLoaderOptions o;
  o.patterns = {dir.file("d_*.bin"), fifo};
  o.batch_size = 2;
  o.seq_len = 16;
  auto loader = std::async(std::launch::async, [&] {
    try {
      DataLoader l(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  });
  REQUIRE(loader.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  CHECK_THAT(loader.get(), Catch::Contains("pipe.bin") && Catch::Contains("FIFO"));
}
