// Writes a token stream as llm.c shards, exactly like llm.c's fineweb.py: header of 256 int32
// {20240520, 1, ntok, 0...}, then ntok uint16 tokens; shards hold `shard_tokens` tokens (the last
// one fewer); shard 0 is NAME_val_000000.bin, then NAME_train_000001.bin, ... fineweb.py fills a
// shard with documents and lets the document that crosses the boundary spill into the next shard,
// which makes the shards consecutive fixed-size slices of the concatenated token stream; so this
// writer simply slices the stream. `val_tokens` (when > 0) gives shard 0 its own size (llm.c's
// tinyshakespeare.py: the first 32,768 tokens are val).
// Each shard is written to ".NAME_..._XXXXXX.bin.partial" and renamed when complete; abort() removes
// the partial file, so no incomplete shard ever carries a final name.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace mousse::tok {

class ShardWriter {
 public:
  ShardWriter(std::string out_dir, std::string name, uint64_t shard_tokens, uint64_t val_tokens = 0);
  ~ShardWriter();
  void write(const uint16_t* tokens, size_t n);
  // Completes the last shard (if it holds tokens). Returns the list of shard paths written.
  const std::vector<std::string>& finish();
  void abort();
  uint64_t tokens_written() const { return total_; }
  const std::vector<std::string>& shards() const { return done_; }

  static std::string shard_name(const std::string& name, uint64_t index);

 private:
  void open_shard();
  void close_shard();
  uint64_t capacity() const { return (index_ == 0 && val_tokens_ > 0) ? val_tokens_ : shard_tokens_; }
  std::string dir_, name_;
  uint64_t shard_tokens_, val_tokens_;
  uint64_t index_ = 0, in_shard_ = 0, total_ = 0;
  FILE* f_ = nullptr;
  std::string tmp_path_, final_path_;
  std::vector<std::string> done_;
  std::vector<char> iobuf_;
};

}  // namespace mousse::tok
