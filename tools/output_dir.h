// The output directory of a mousse-tokenize run: which files are shards of a name, and a lock that
// keeps two runs from writing the same shards at once.
#pragma once
#include <string>
#include <vector>

namespace mousse::tok {

// True for the names ShardWriter gives `name`'s shards: NAME_val_NNNNNN.bin, NAME_train_NNNNNN.bin
// (six digits or more). "a_b_val_000000.bin" is not a shard of "a".
bool is_shard_of(const std::string& file_name, const std::string& name);
// True for ShardWriter's temporary files of `name`: .NAME_val_NNNNNN.bin.partial, ...
bool is_partial_shard_of(const std::string& file_name, const std::string& name);

// File names (not paths) in `dir` for which pred(file_name) holds, sorted; throws std::runtime_error
// when `dir` cannot be listed.
std::vector<std::string> list_dir(const std::string& dir, bool (*pred)(const std::string&, const std::string&),
                                  const std::string& name);

// An exclusive flock on DIR/.NAME.lock for as long as the object lives; the file is removed when it
// is released. A run killed with SIGKILL leaves the file but not the lock, so the next run goes on.
class OutputLock {
 public:
  OutputLock() = default;
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  // Returns an error message, empty on success. On a file system without locks it succeeds
  // without one and warning() says so.
  std::string acquire(const std::string& dir, const std::string& name);
  const std::string& warning() const { return warning_; }

 private:
  int fd_ = -1;
  std::string path_, warning_;
};

}  // namespace mousse::tok
