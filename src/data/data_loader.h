#pragma once
// DataLoader: this rank's micro-batches from llm.c token shards, read ahead by a background thread.
//
// Data order (llm.c's; docs/data.md). With n = B·T tokens per micro-batch, batch j of a shard is
// tokens [j·n, j·n + n + 1): inputs the first n, targets the same shifted by one. A shard gives
// (ntok − 1) / n batches. One epoch is the "global sequence" of all batches of shard 0, then shard
// 1, ... (shards in expand_globs order); epochs repeat forever. Rank r of W takes global batches
// r, r+W, r+2W, ... (across shard and epoch boundaries), so W ranks × 1 micro-step see exactly the
// batches of 1 rank × W micro-steps of gradient accumulation.
//
// Shuffling (optional): per epoch e, the shard order and, within each shard, the order of its
// batch offsets are seeded permutations (Fisher–Yates over std::mt19937_64, whose output sequence
// the C++ standard fixes, with our own unbiased bounded draw), identical on every rank/platform.
// Every batch still occurs exactly once per epoch.
//
// Position: the number of micro-batches this rank has consumed. seek(k) restores it
// arithmetically; a loader after seek(k) yields what a fresh loader yields after k next() calls.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"

namespace mousse {

struct DataLoaderOptions {
  std::vector<std::string> patterns;  // shard paths or globs
  int64_t batch_size = 0;             // B, per rank and micro-step
  int64_t seq_len = 0;                // T
  int rank = 0, world_size = 1;
  bool shuffle = false;
  uint64_t seed = 0;
  int64_t vocab_size = 50257;  // every token read must be < vocab_size
  int prefetch = 4;            // batches read ahead by the background thread; 0 = read in next()
};

class Prefetcher;
struct BatchSource;

class DataLoader {
 public:
  explicit DataLoader(DataLoaderOptions opt);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Fills inputs[B*T] and targets[B*T] with this rank's next micro-batch. Errors (a token
  // >= vocab_size, a shard truncated since start-up) are thrown here, also when they happened on
  // the prefetch thread; the position then stays at the failing batch.
  void next(int32_t* inputs, int32_t* targets);

  int64_t position() const { return position_; }
  void seek(int64_t micro_batches_consumed);

  // Micro-batches of B×T in one epoch over all ranks together (each rank gets about 1/W of them).
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // The epoch of the next batch this rank will read.
  int64_t epoch() const;
  int64_t total_tokens() const { return total_tokens_; }
  const std::vector<ShardHeader>& shards() const { return shards_; }
  const DataLoaderOptions& options() const { return opt_; }
  // "3 shards, 305,260 tokens, 298 batches of 8×128 per epoch"
  std::string describe() const;

  // The prefetch ring (aligned host memory), for a GPU backend to page-lock; null if prefetch=0.
  void* host_buffer() const;
  size_t host_buffer_bytes() const;

 private:
  DataLoaderOptions opt_;
  std::vector<ShardHeader> shards_;
  int64_t total_tokens_ = 0;
  int64_t batches_per_epoch_ = 0;
  int64_t position_ = 0;
  std::unique_ptr<BatchSource> source_;  // reads global batch g; used by one thread at a time
  std::unique_ptr<Prefetcher> prefetcher_;
  std::vector<int32_t> sync_buffer_;  // prefetch = 0
};

// Fisher–Yates permutation of 0..n-1 driven by std::mt19937_64(seed): the same on every platform.
std::vector<uint32_t> seeded_permutation(uint32_t n, uint64_t seed);

}  // namespace mousse
