#pragma once
// Metrics: one human-readable progress line per step on stdout, and a JSONL log (one object
// per line: "run", "train", "eval", "diagnostics", "checkpoint", "end") meant for plotting.
#include <cstdio>
#include <string>
#include <vector>

#include "core/json_config.h"

namespace mousse {

class MetricsLog {
 public:
  // Opens <dir>/metrics.jsonl. With keep_until_step >= 0 (a resumed run) the existing log is
  // kept up to that step and later records (from the interrupted attempt) are dropped; the file
  // is replaced atomically (train/atomic_file.h).
  MetricsLog(const std::string& dir, int64_t keep_until_step);
  ~MetricsLog();
  // One line, flushed. A failed write (disk full, I/O error) throws naming the file: a run
  // never goes on with a log that silently stopped.
  void write(const json& record);
  void sync();   // fsync: the records so far survive a crash (after each checkpoint)
  void close();  // flush, fsync and close, with errors reported (the destructor ignores them)
  const std::string& path() const { return path_; }

 private:
  void check(bool ok);  // throws with errno's reason unless ok

  std::string path_;
  FILE* f_ = nullptr;
};

// One diagnostics record from every data-parallel rank's (per_rank[r] = {group: the group's
// optimizer diagnostics}), each covering the matrices or slices that rank updates: objects
// (Mousse's per-matrix "precond") are merged key by key, "update_rms" is recomputed from the
// summed "update_sum_squares" and "update_count", counters ("*_failures") are summed, times
// ("*_seconds*") take the slowest rank, and any other value is rank 0's.
json merge_rank_diagnostics(const std::vector<json>& per_rank);

std::string format_duration(double seconds);  // "1:02:03"
std::string format_count(double n);           // "12,345"

}  // namespace mousse
