// DataLoader: llm.c data order, shard boundaries, epochs, rank striding, shuffling, seek,
// prefetch and error propagation; the golden tinyshakespeare shards.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/error.h"
#include "data/data_loader.h"
#include "data/prefetch.h"
#include "data_test_util.h"

using namespace mousse;
using mousse_test::TempDir;
using Catch::Matchers::Contains;

namespace {

struct Batch {
  std::vector<int32_t> x, y;
  bool operator==(const Batch& o) const { return x == o.x && y == o.y; }
  bool operator<(const Batch& o) const { return x != o.x ? x < o.x : y < o.y; }
};

Batch next_batch(DataLoader& dl) {
  const int64_t n = dl.options().batch_size * dl.options().seq_len;
  Batch b{std::vector<int32_t>(n), std::vector<int32_t>(n)};
  dl.next(b.x.data(), b.y.data());
  return b;
}

std::vector<Batch> take(DataLoader& dl, int64_t count) {
  std::vector<Batch> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(next_batch(dl));
  return out;
}

// The spec, written out: batch j of a shard is tokens [j·n, j·n + n + 1); all batches of shard 0,
// then shard 1, ...; (ntok − 1) / n batches per shard.
std::vector<Batch> reference_epoch(const std::vector<std::vector<uint16_t>>& shards, int64_t n) {
  std::vector<Batch> out;
  for (const auto& t : shards) {
    const int64_t nb = (static_cast<int64_t>(t.size()) - 1) / n;
    for (int64_t j = 0; j < nb; ++j) {
      Batch b;
      for (int64_t i = 0; i < n; ++i) {
        b.x.push_back(t[j * n + i]);
        b.y.push_back(t[j * n + i + 1]);
      }
      out.push_back(std::move(b));
    }
  }
  return out;
}

DataLoaderOptions options(const TempDir& dir, int64_t B, int64_t T) {
  DataLoaderOptions o;
  o.patterns = {dir.file("d_*.bin")};
  o.batch_size = B;
  o.seq_len = T;
  return o;
}

}  // namespace

TEST_CASE("loader: exact batches, shard boundaries and epoch wrap", "[data][loader]") {
  TempDir dir;
  // n = 3·5 = 15. Shard sizes: 46 → 3 batches (45 = 3·15 exactly needs 46), 100 → 6 batches with
  // a 9-token tail, 16 → 1 batch, 40 → 2 batches.
  const std::vector<int64_t> sizes{46, 100, 16, 40};
  auto shards = mousse_test::write_random_shards(dir, sizes, 11);
  auto ref = reference_epoch(shards, 15);
  REQUIRE(ref.size() == 12);

  for (int prefetch : {0, 1, 4}) {
    DYNAMIC_SECTION("prefetch " << prefetch) {
      auto o = options(dir, 3, 5);
      o.prefetch = prefetch;
      DataLoader dl(o);
      CHECK(dl.shards().size() == 4);
      CHECK(dl.total_tokens() == 46 + 100 + 16 + 40);
      CHECK(dl.batches_per_epoch() == 12);
      // Two and a half epochs.
      for (int64_t k = 0; k < 30; ++k) {
        CHECK(dl.epoch() == k / 12);
        CHECK(dl.position() == k);
        Batch b = next_batch(dl);
        INFO("batch " << k);
        CHECK(b == ref[k % 12]);
      }
      CHECK(dl.position() == 30);
    }
  }
  // The formula itself, spelled out once for shard 1's second batch: tokens [15, 31).
  CHECK(ref[4].x[0] == shards[1][15]);
  CHECK(ref[4].y[14] == shards[1][30]);
}

TEST_CASE("loader: ranks stride the global sequence across shards and epochs", "[data][loader]") {
  TempDir dir;
  auto shards = mousse_test::write_random_shards(dir, {50, 33, 81}, 12);  // n = 8: 6+4+10 = 20
  auto ref = reference_epoch(shards, 8);
  REQUIRE(ref.size() == 20);

  for (int world : {2, 3, 7}) {
    std::vector<std::vector<Batch>> per_rank;
    for (int r = 0; r < world; ++r) {
      auto o = options(dir, 2, 4);
      o.rank = r;
      o.world_size = world;
      DataLoader dl(o);
      per_rank.push_back(take(dl, 15));
      for (int64_t k = 0; k < 15; ++k) {
        INFO("world " << world << " rank " << r << " step " << k);
        CHECK(per_rank[r][k] == ref[(r + k * world) % 20]);
      }
    }
    // Interleaving the ranks gives back the 1-rank sequence.
    auto o = options(dir, 2, 4);
    DataLoader one(o);
    auto seq = take(one, 15 * world);
    for (int64_t g = 0; g < 15 * world; ++g) CHECK(per_rank[g % world][g / world] == seq[g]);
  }
}

TEST_CASE("loader: 2 ranks × 1 micro-step == 1 rank × 2 micro-steps", "[data][loader]") {
  TempDir dir;
  mousse_test::write_random_shards(dir, {300, 129, 77}, 13);
  for (bool shuffle : {false, true}) {
    auto o = options(dir, 4, 16);
    o.shuffle = shuffle;
    o.seed = 5;
    DataLoader one(o);
    o.world_size = 2;
    DataLoader r0(o);
    o.rank = 1;
    DataLoader r1(o);
    for (int step = 0; step < 25; ++step) {  // several epochs (7 batches each)
      INFO("shuffle " << shuffle << " step " << step);
      Batch a0 = next_batch(one), a1 = next_batch(one);
      CHECK(next_batch(r0) == a0);
      CHECK(next_batch(r1) == a1);
    }
  }
}

TEST_CASE("loader: shuffle is a deterministic per-epoch permutation", "[data][loader]") {
  TempDir dir;
  auto shards = mousse_test::write_random_shards(dir, {161, 97, 240, 49}, 14);  // n = 16
  auto ref = reference_epoch(shards, 16);
  const int64_t G = static_cast<int64_t>(ref.size());
  REQUIRE(G == 10 + 6 + 14 + 3);
  const std::multiset<Batch> all(ref.begin(), ref.end());

  auto o = options(dir, 2, 8);
  o.shuffle = true;
  o.seed = 1234;
  DataLoader a(o), b(o);
  auto ea = take(a, 3 * G);
  CHECK(take(b, 3 * G) == ea);  // same seed, same sequence

  std::vector<std::vector<Batch>> epochs;
  for (int e = 0; e < 3; ++e) {
    epochs.emplace_back(ea.begin() + e * G, ea.begin() + (e + 1) * G);
    // Every batch exactly once per epoch.
    CHECK(std::multiset<Batch>(epochs[e].begin(), epochs[e].end()) == all);
    CHECK(epochs[e] != ref);  // actually shuffled
  }
  CHECK(epochs[0] != epochs[1]);
  CHECK(epochs[1] != epochs[2]);

  // The shards stay contiguous within an epoch (whole-shard order permuted, then batches within).
  std::map<std::vector<int32_t>, int> shard_of;
  for (int s = 0, g = 0; s < 4; ++s)
    for (int64_t j = 0; j < (static_cast<int64_t>(shards[s].size()) - 1) / 16; ++j, ++g)
      shard_of[ref[g].x] = s;
  for (const auto& ep : epochs) {
    std::vector<int> order;
    for (const auto& bt : ep)
      if (order.empty() || order.back() != shard_of[bt.x]) order.push_back(shard_of[bt.x]);
    CHECK(order.size() == 4);
  }

  o.seed = 1235;
  DataLoader c(o);
  CHECK(take(c, G) != epochs[0]);
}

TEST_CASE("loader: seek(k) equals advancing k times", "[data][loader]") {
  TempDir dir;
  mousse_test::write_random_shards(dir, {90, 41, 70}, 15);  // n = 10: 8 + 4 + 6 = 18 per epoch
  for (bool shuffle : {false, true})
    for (int world : {1, 2})
      for (int prefetch : {0, 3}) {
        auto o = options(dir, 2, 5);
        o.shuffle = shuffle;
        o.seed = 99;
        o.world_size = world;
        o.rank = world - 1;
        o.prefetch = prefetch;
        DataLoader fresh(o);
        auto seq = take(fresh, 40);  // a few epochs
        DataLoader dl(o);
        for (int64_t k : {0, 1, 7, 9, 17, 18, 19, 30, 3, 0, 25}) {  // forwards and backwards
          INFO("shuffle " << shuffle << " world " << world << " prefetch " << prefetch << " k "
                          << k);
          dl.seek(k);
          CHECK(dl.position() == k);
          auto got = take(dl, 5);
          for (int i = 0; i < 5; ++i) CHECK(got[i] == seq[k + i]);
          CHECK(dl.position() == k + 5);
        }
        // Far positions need no reading of the skipped data.
        dl.seek(1000000007);
        CHECK(dl.position() == 1000000007);
        CHECK(dl.epoch() == (o.rank + 1000000007LL * world) / 18);
        next_batch(dl);
      }
}

TEST_CASE("loader: token id out of range names file and position", "[data][loader]") {
  TempDir dir;
  auto t = mousse_test::random_tokens(200, 16, 50257);
  t[77] = 60000;  // n = 16: batch 4 reads tokens [64, 81)
  write_shard(dir.file("d_000000.bin"), t);
  for (int prefetch : {0, 2, 8}) {
    auto o = options(dir, 2, 8);
    o.prefetch = prefetch;
    DataLoader dl(o);
    take(dl, 4);  // batches before the bad one are delivered
    for (int attempt = 0; attempt < 2; ++attempt) {
      CHECK_THROWS_AS(next_batch(dl), mousse::Error);
      CHECK_THROWS_WITH(next_batch(dl), Contains(dir.file("d_000000.bin")) &&
                                            Contains("position 77") && Contains("60000") &&
                                            Contains("50257"));
      CHECK(dl.position() == 4);
    }
    // Seeking past the bad batch recovers.
    dl.seek(6);
    next_batch(dl);
  }
  // A smaller vocabulary catches ordinary tokens too.
  auto o = options(dir, 2, 8);
  o.vocab_size = 10;
  DataLoader dl(o);
  CHECK_THROWS_WITH(next_batch(dl), Contains("vocab_size 10"));
}

TEST_CASE("loader: start-up errors", "[data][loader]") {
  TempDir dir;
  mousse_test::write_random_shards(dir, {100, 20}, 17);
  auto o = options(dir, 4, 5);  // n + 1 = 21 > 20
  CHECK_THROWS_WITH(DataLoader(o), Contains(dir.file("d_000001.bin")) && Contains("too small") &&
                                       Contains("20 tokens") && Contains("21"));
  o = options(dir, 2, 5);
  o.patterns = {dir.file("nothing_*.bin")};
  CHECK_THROWS_WITH(DataLoader(o), Contains("no files match") && Contains("nothing_*.bin"));
  o = options(dir, 2, 5);
  o.rank = 2;
  o.world_size = 2;
  CHECK_THROWS_AS(DataLoader(o), mousse::Error);
  o = options(dir, 0, 5);
  CHECK_THROWS_AS(DataLoader(o), mousse::Error);
  o = options(dir, 2, 5);
  mousse_test::patch_int32(dir.file("d_000000.bin"), 0, 7);
  CHECK_THROWS_WITH(DataLoader(o), Contains(dir.file("d_000000.bin")) && Contains("magic"));
}

TEST_CASE("loader: a shard truncated after start-up fails in next()", "[data][loader]") {
  TempDir dir;
  mousse_test::write_random_shards(dir, {100, 100}, 18);
  for (int prefetch : {0, 4}) {
    mousse_test::write_random_shards(dir, {100, 100}, 18);
    auto o = options(dir, 2, 5);
    o.prefetch = prefetch;
    DataLoader dl(o);
    take(dl, 3);
    std::filesystem::resize_file(dir.file("d_000001.bin"), 1024 + 50);
    take(dl, 6);  // the rest of shard 0 (some may be prefetched already)
    CHECK_THROWS_WITH(next_batch(dl), Contains(dir.file("d_000001.bin")) && Contains("size"));
  }
}

TEST_CASE("prefetch: producer errors reach the consumer in order", "[data][prefetch]") {
  for (int depth : {1, 3}) {
    Prefetcher p(4, depth, [](int64_t k, int32_t* slot) {
      if (k == 5) throw std::runtime_error("disk on fire at item 5");
      if (k == 8) throw mousse::Error("never reached");
      for (int i = 0; i < 4; ++i) slot[i] = static_cast<int32_t>(10 * k + i);
    });
    CHECK(p.host_buffer() != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p.host_buffer()) % 4096 == 0);
    CHECK(p.host_buffer_bytes() >= 4 * sizeof(int32_t) * depth);
    p.restart(2);
    for (int64_t k = 2; k < 5; ++k) {
      int32_t first = -1;
      CHECK(p.consume([&](const int32_t* s) { first = s[0]; }) == k);
      CHECK(first == 10 * k);
    }
    CHECK_THROWS_WITH(p.consume([](const int32_t*) {}), Contains("disk on fire"));
    CHECK_THROWS_WITH(p.consume([](const int32_t*) {}), Contains("disk on fire"));
    p.restart(6);
    CHECK(p.consume([](const int32_t*) {}) == 6);
    CHECK(p.consume([](const int32_t*) {}) == 7);
    CHECK_THROWS_AS(p.consume([](const int32_t*) {}), mousse::Error);
  }
}

TEST_CASE("prefetch: shutdown with a full ring and a slow producer", "[data][prefetch]") {
  {
    Prefetcher p(8, 2, [](int64_t, int32_t*) {});
    p.restart(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // ring fills, producer waits
  }
  {
    Prefetcher p(8, 2, [](int64_t, int32_t*) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    });
    p.restart(0);
  }  // destructor joins while a fill is in progress
  TempDir dir;
  mousse_test::write_random_shards(dir, {1000}, 19);
  DataLoader dl(options(dir, 2, 4));
  next_batch(dl);
}  // DataLoader destructor stops its thread

TEST_CASE("loader: seeded permutation is fixed across platforms", "[data][loader]") {
  // std::mt19937_64's output is fixed by the C++ standard: the 10000th value of the default seed.
  std::mt19937_64 g;
  g.discard(9999);
  CHECK(g() == 9981545732273789042ull);

  auto p = seeded_permutation(1000, 42);
  std::vector<uint32_t> sorted(p);
  std::sort(sorted.begin(), sorted.end());
  for (uint32_t i = 0; i < 1000; ++i) CHECK(sorted[i] == i);
  CHECK(seeded_permutation(1000, 42) == p);
  CHECK(seeded_permutation(1000, 43) != p);
  CHECK(seeded_permutation(0, 1).empty());
  CHECK(seeded_permutation(1, 1) == std::vector<uint32_t>{0});
  // Pinned so that a change of the shuffle (which would change resumed runs' data) is noticed.
  CHECK(seeded_permutation(10, 7) == std::vector<uint32_t>{0, 7, 4, 9, 3, 1, 2, 8, 6, 5});
}

TEST_CASE("loader: describe()", "[data][loader]") {
  TempDir dir;
  mousse_test::write_random_shards(dir, {5000, 1234567 - 5000 - 2000, 2000}, 20);
  auto o = options(dir, 8, 128);
  CHECK(DataLoader(o).describe() == "3 shards, 1,234,567 tokens, 1,203 batches of 8×128 per epoch");
  o.world_size = 2;
  o.rank = 1;
  o.shuffle = true;
  o.seed = 3;
  CHECK(DataLoader(o).describe() ==
        "3 shards, 1,234,567 tokens, 1,203 batches of 8×128 per epoch, rank 1 of 2 takes every "
        "2nd from batch 1, shuffled (seed 3)");
}

TEST_CASE("loader: golden tinyshakespeare shards made by llm.c", "[data][golden]") {
  const std::string dir = std::string(MOUSSE_SHARED_DATA) + "/tinyshakespeare";
  if (!std::filesystem::exists(dir + "/tiny_shakespeare_val.bin")) {
    WARN("skipped: " << dir << " not found (set MOUSSE_SHARED_DATA)");
    return;
  }
  ShardHeader val = read_shard_header(dir + "/tiny_shakespeare_val.bin");
  ShardHeader train = read_shard_header(dir + "/tiny_shakespeare_train.bin");
  CHECK(val.num_tokens == 32768);
  CHECK(train.num_tokens == 305260);
  // llm.c's tinyshakespeare.py puts EOT 50256 before each section and cuts the token stream after
  // 32,768 tokens: val starts with EOT ("<|endoftext|>First Citizen:\n"), train continues mid-section.
  std::vector<uint16_t> v(32768), t(305260);
  ShardReader(val).read(0, 32768, v.data());
  ShardReader(train).read(0, 305260, t.data());
  CHECK(std::vector<uint16_t>(v.begin(), v.begin() + 5) ==
        std::vector<uint16_t>{50256, 5962, 22307, 25, 198});
  CHECK(std::vector<uint16_t>(t.begin(), t.begin() + 8) ==
        std::vector<uint16_t>{9203, 262, 39418, 13, 628, 50256, 22747, 49208});
  CHECK(std::count(v.begin(), v.end(), 50256) == 809);
  CHECK(std::count(t.begin(), t.end(), 50256) == 6413);
  auto files = expand_globs({dir + "/*.bin"});
  REQUIRE(files.size() == 2);
  CHECK(files[0] == train.path);  // sorted by name: "train" < "val"

  DataLoaderOptions o;
  o.patterns = {dir + "/tiny_shakespeare_train.bin"};
  o.batch_size = 8;
  o.seq_len = 128;
  DataLoader dl(o);
  CHECK(dl.describe() == "1 shard, 305,260 tokens, 298 batches of 8×128 per epoch");
  next_batch(dl);
  auto b = next_batch(dl);  // batch 1: tokens [1024, 2049)
  for (int i = 0; i < 1024; ++i) {
    CHECK(b.x[i] == t[1024 + i]);
    CHECK(b.y[i] == t[1025 + i]);
  }
  // A whole epoch of both shards reads cleanly (every token < 50257).
  o.patterns = {dir + "/*.bin"};
  o.batch_size = 16;
  o.seq_len = 1024;
  DataLoader all(o);
  CHECK(all.batches_per_epoch() == 305259 / 16384 + 32767 / 16384);
  take(all, all.batches_per_epoch());
}
