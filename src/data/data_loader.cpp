#include "data/data_loader.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <sstream>

#include "core/error.h"
#include "data/prefetch.h"

namespace mousse {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
uint64_t mix(uint64_t a, uint64_t b) { return splitmix64(a ^ splitmix64(b)); }

// Uniform in [0, bound), unbiased: reject the 2^64 mod bound lowest raw outputs.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;  // == 2^64 mod bound
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

// Seeds of the per-epoch permutations: stream 0 orders the shards, stream s+1 the batches of s.
uint64_t epoch_seed(uint64_t seed, int64_t epoch, uint64_t stream) {
  return mix(mix(seed, static_cast<uint64_t>(epoch)), stream);
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return v < 0 ? "-" + s : s;
}

std::string ordinal(int64_t v) {
  const int64_t h = v % 100, t = v % 10;
  const char* suf = (h >= 11 && h <= 13) ? "th" : t == 1 ? "st" : t == 2 ? "nd" : t == 3 ? "rd" : "th";
  return std::to_string(v) + suf;
}

}  // namespace

std::vector<uint32_t> seeded_permutation(uint32_t n, uint64_t seed) {
  std::vector<uint32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = i;
  std::mt19937_64 rng(seed);
  for (uint32_t i = n; i > 1; --i) {
    const uint32_t j = static_cast<uint32_t>(uniform_below(rng, i));
    std::swap(p[i - 1], p[j]);
  }
  return p;
}

// Maps a global batch index to (shard, token offset) and reads it. Owns the open shard and the
// permutation caches, so it is used by one thread at a time (the prefetch thread, or next() when
// prefetch = 0; seek() stops the thread before anything changes).
struct BatchSource {
  const DataLoaderOptions& opt;
  const std::vector<ShardHeader>& shards;
  int64_t n;                           // B·T
  std::vector<int64_t> shard_batches;  // batches per shard
  int64_t per_epoch;
  std::vector<int64_t> prefix;  // unshuffled: first global batch of each shard, plus the total

  // Caches.
  ShardReader reader;
  std::vector<uint16_t> scratch;
  int64_t order_epoch = -1;
  std::vector<uint32_t> order;         // shuffled shard order of order_epoch
  std::vector<int64_t> order_prefix;   // first batch of each position of `order`
  int64_t perm_epoch = -1, perm_shard = -1;
  std::vector<uint32_t> perm;          // shuffled batch order of (perm_epoch, perm_shard)

  BatchSource(const DataLoaderOptions& o, const std::vector<ShardHeader>& s, int64_t n_)
      : opt(o), shards(s), n(n_) {
    prefix.push_back(0);
    for (const auto& h : shards) {
      shard_batches.push_back((h.num_tokens - 1) / n);
      prefix.push_back(prefix.back() + shard_batches.back());
    }
    per_epoch = prefix.back();
    scratch.resize(static_cast<size_t>(n + 1));
  }

  // Which shard and which batch of it global batch g is.
  void locate(int64_t g, int64_t* shard, int64_t* batch) {
    const int64_t epoch = g / per_epoch, i = g % per_epoch;
    if (!opt.shuffle) {
      const int64_t s = std::upper_bound(prefix.begin(), prefix.end(), i) - prefix.begin() - 1;
      *shard = s;
      *batch = i - prefix[s];
      return;
    }
    if (order_epoch != epoch) {
      order = seeded_permutation(static_cast<uint32_t>(shards.size()), epoch_seed(opt.seed, epoch, 0));
      order_prefix.assign(1, 0);
      for (uint32_t s : order) order_prefix.push_back(order_prefix.back() + shard_batches[s]);
      order_epoch = epoch;
    }
    const int64_t p =
        std::upper_bound(order_prefix.begin(), order_prefix.end(), i) - order_prefix.begin() - 1;
    const int64_t s = order[p];
    if (perm_epoch != epoch || perm_shard != s) {
      perm = seeded_permutation(static_cast<uint32_t>(shard_batches[s]),
                                epoch_seed(opt.seed, epoch, static_cast<uint64_t>(s) + 1));
      perm_epoch = epoch;
      perm_shard = s;
    }
    *shard = s;
    *batch = perm[i - order_prefix[p]];
  }

  // Writes inputs to out[0, n) and targets to out[n, 2n).
  void read(int64_t g, int32_t* out) {
    int64_t s, j;
    locate(g, &s, &j);
    const ShardHeader& h = shards[s];
    if (!reader.is_open() || reader.header().path != h.path) {
      reader = ShardReader();  // close the previous shard first
      reader = ShardReader(h);
    }
    const int64_t first = j * n;
    reader.read(first, n + 1, scratch.data());
    const uint16_t* t = scratch.data();
    for (int64_t i = 0; i <= n; ++i)
      if (t[i] >= opt.vocab_size)
        fail("shard ", h.path, ": token id ", t[i], " at token position ", first + i,
             " (byte offset ", kShardHeaderBytes + 2 * (first + i), ") is out of range: expected < ",
             "vocab_size ", opt.vocab_size);
    for (int64_t i = 0; i < n; ++i) out[i] = t[i];
    for (int64_t i = 0; i < n; ++i) out[n + i] = t[i + 1];
  }
};

DataLoader::DataLoader(DataLoaderOptions opt) : opt_(std::move(opt)) {
  if (opt_.batch_size <= 0 || opt_.seq_len <= 0 || opt_.batch_size > INT32_MAX ||
      opt_.seq_len > INT32_MAX)
    fail("data loader: batch size and sequence length must be positive, got B=", opt_.batch_size,
         " T=", opt_.seq_len);
  if (opt_.world_size < 1 || opt_.rank < 0 || opt_.rank >= opt_.world_size)
    fail("data loader: rank ", opt_.rank, " is not in [0, world_size=", opt_.world_size, ")");
  if (opt_.vocab_size <= 0) fail("data loader: vocab_size must be positive, got ", opt_.vocab_size);
  if (opt_.prefetch < 0) fail("data loader: prefetch depth must be >= 0, got ", opt_.prefetch);

  const int64_t n = opt_.batch_size * opt_.seq_len;
  for (const std::string& path : expand_globs(opt_.patterns)) {
    ShardHeader h = read_shard_header(path);
    if (h.num_tokens < n + 1)
      fail("shard ", path, ": too small: it has ", h.num_tokens, " tokens, but one batch of B×T = ",
           opt_.batch_size, "×", opt_.seq_len, " needs B·T+1 = ", n + 1, " tokens");
    total_tokens_ += h.num_tokens;
    shards_.push_back(std::move(h));
  }
  source_ = std::make_unique<BatchSource>(opt_, shards_, n);
  batches_per_epoch_ = source_->per_epoch;
  if (opt_.prefetch > 0) {
    const int64_t rank = opt_.rank, world = opt_.world_size;
    BatchSource* src = source_.get();
    prefetcher_ = std::make_unique<Prefetcher>(
        2 * n, opt_.prefetch,
        [src, rank, world](int64_t k, int32_t* slot) { src->read(rank + k * world, slot); });
  } else {
    sync_buffer_.resize(static_cast<size_t>(2 * n));
  }
}

DataLoader::~DataLoader() = default;  // the Prefetcher's destructor stops its thread

void DataLoader::next(int32_t* inputs, int32_t* targets) {
  const int64_t n = source_->n;
  auto deliver = [&](const int32_t* slot) {
    std::memcpy(inputs, slot, sizeof(int32_t) * n);
    std::memcpy(targets, slot + n, sizeof(int32_t) * n);
  };
  if (!prefetcher_) {
    source_->read(opt_.rank + position_ * opt_.world_size, sync_buffer_.data());
    deliver(sync_buffer_.data());
    ++position_;
    return;
  }
  if (!prefetcher_->running()) prefetcher_->restart(position_);  // lazily, after start or seek
  const int64_t k = prefetcher_->consume(deliver);
  MOUSSE_CHECK(k == position_, "prefetcher delivered batch ", k, " at position ", position_);
  ++position_;
}

void DataLoader::seek(int64_t micro_batches_consumed) {
  if (micro_batches_consumed < 0)
    fail("data loader: cannot seek to negative position ", micro_batches_consumed);
  if (micro_batches_consumed > (INT64_MAX - opt_.rank) / opt_.world_size)
    fail("data loader: seek position ", micro_batches_consumed, " is out of range");
  if (prefetcher_) prefetcher_->stop();
  position_ = micro_batches_consumed;
}

int64_t DataLoader::epoch() const {
  return (opt_.rank + position_ * opt_.world_size) / batches_per_epoch_;
}

std::string DataLoader::describe() const {
  std::ostringstream os;
  os << shards_.size() << (shards_.size() == 1 ? " shard, " : " shards, ")
     << with_commas(total_tokens_) << " tokens, " << with_commas(batches_per_epoch_)
     << " batches of " << opt_.batch_size << "×" << opt_.seq_len << " per epoch";
  if (opt_.world_size > 1)
    os << ", rank " << opt_.rank << " of " << opt_.world_size << " takes every "
       << ordinal(opt_.world_size) << " from batch " << opt_.rank;
  if (opt_.shuffle) os << ", shuffled (seed " << opt_.seed << ")";
  return os.str();
}

void* DataLoader::host_buffer() const { return prefetcher_ ? prefetcher_->host_buffer() : nullptr; }
size_t DataLoader::host_buffer_bytes() const {
  return prefetcher_ ? prefetcher_->host_buffer_bytes() : 0;
}

}  // namespace mousse
