#pragma once
// llm.c token shards: the on-disk format, header validation, glob expansion, a token reader and
// an atomic writer.
//
// Format (llm.c / modded-nanogpt, GPT-2 tokens):
//   header  256 × int32 little-endian: [0] = 20240520 (magic), [1] = 1 (version),
//           [2] = number of tokens, the rest 0 (not checked)
//   tokens  ntok × uint16 little-endian
// and the file size is exactly 1024 + 2·ntok bytes.
#include <cstdint>
#include <string>
#include <vector>

namespace mousse {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr int kShardHeaderInts = 256;
constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;  // 1024

struct ShardHeader {
  std::string path;
  int64_t num_tokens = 0;
};

// Reads and validates a shard's header and its file size (missing file, bad magic, bad version,
// size mismatch all throw mousse::Error naming the file and what was expected/found).
ShardHeader read_shard_header(const std::string& path);

// Expands shell glob patterns (POSIX glob). Each pattern's matches are sorted by name; the
// patterns' lists are concatenated in the order given, a file matched twice is kept once. A
// pattern without matches is an error naming the pattern (or, for a plain path, the file).
std::vector<std::string> expand_globs(const std::vector<std::string>& patterns);

// Writes a shard atomically (temporary file in the same folder, fsync, rename), so a reader never
// sees a half-written shard.
void write_shard(const std::string& path, const uint16_t* tokens, int64_t count);
void write_shard(const std::string& path, const std::vector<uint16_t>& tokens);

// An open shard for random-access token reads with pread (no whole-shard buffering). Move-only.
class ShardReader {
 public:
  ShardReader() = default;
  // Opens and re-validates the file against `header` (its size must still match).
  explicit ShardReader(const ShardHeader& header);
  ~ShardReader();
  ShardReader(ShardReader&& o) noexcept;
  ShardReader& operator=(ShardReader&& o) noexcept;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  bool is_open() const { return fd_ >= 0; }
  const ShardHeader& header() const { return header_; }
  // Reads tokens [first, first + count) into out; the range must lie inside the shard.
  void read(int64_t first, int64_t count, uint16_t* out) const;

 private:
  void close();
  ShardHeader header_;
  int fd_ = -1;
};

}  // namespace mousse
