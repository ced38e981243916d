#pragma once
// The start-up check that every token id of the data is below the vocabulary: a scan of whole
// shards, so a bad token anywhere stops the run before its first step (the loader checks each
// batch it reads too, which catches a shard changed while training, but only when it gets there).
//
// The scan reads large blocks with pread (no mmap: a shard truncated meanwhile is an error, not
// a SIGBUS) on every OpenMP thread and takes the maximum of each block in a vectorised loop;
// only a block whose maximum is out of range is searched for its first bad token. From the page
// cache it runs at several GB/s per core (the copy out of the cache costs more than the max);
// from disk at the disk's speed. Start-up prints its time.
#include <cstdint>
#include <vector>

#include "data/shard.h"

namespace mousse {

struct TokenScan {
  int64_t tokens = 0;    // tokens scanned
  int max_id = -1;       // the largest token id seen (-1: none scanned)
  double seconds = 0;    // wall time of the scan
};

// Scans part `part` of `parts` of every shard (tokens [part·n/parts, (part+1)·n/parts) of a
// shard of n: ranks split the work) and throws mousse::Error naming the shard, the position and
// the value of the first token id >= vocab_size found there.
TokenScan check_token_ids(const std::vector<ShardHeader>& shards, int64_t vocab_size,
                          int part = 0, int parts = 1);

}  // namespace mousse
