#pragma once
// Helpers for the data tests: seeded random shards (and test_files.h's TempDir).
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "data/shard.h"
#include "test_files.h"

namespace mousse_test {

inline std::vector<uint16_t> random_tokens(int64_t count, uint64_t seed, int vocab = 50257) {
  std::mt19937_64 rng(seed);
  std::vector<uint16_t> t(static_cast<size_t>(count));
  for (auto& x : t) x = static_cast<uint16_t>(rng() % static_cast<uint64_t>(vocab));
  return t;
}

// Writes shards <dir>/<prefix>_000000.bin, ... with the given token counts; returns their tokens.
inline std::vector<std::vector<uint16_t>> write_random_shards(const TempDir& dir,
                                                              const std::vector<int64_t>& sizes,
                                                              uint64_t seed,
                                                              const std::string& prefix = "d") {
  std::vector<std::vector<uint16_t>> all;
  for (size_t i = 0; i < sizes.size(); ++i) {
    all.push_back(random_tokens(sizes[i], seed * 1000 + i));
    char name[64];
    std::snprintf(name, sizeof name, "%s_%06zu.bin", prefix.c_str(), i);
    mousse::write_shard(dir.file(name), all.back());
  }
  return all;
}

// Overwrites 4 bytes at `offset` of a file with an int32.
inline void patch_int32(const std::string& path, int64_t offset, int32_t value) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(offset);
  f.write(reinterpret_cast<const char*>(&value), 4);
}

}  // namespace mousse_test
