#pragma once
// Metrics: one human-readable progress line per step on stdout, and a JSONL log (one object
// per line: "run", "train", "eval", "diagnostics", "checkpoint", "end") meant for plotting.
#include <cstdio>
#include <string>

#include "core/json_config.h"

namespace mousse {

class MetricsLog {
 public:
  // Opens <dir>/metrics.jsonl. With keep_until_step >= 0 (a resumed run) the existing log is
  // kept up to that step and later records (from the interrupted attempt) are dropped.
  MetricsLog(const std::string& dir, int64_t keep_until_step);
  ~MetricsLog();
  void write(const json& record);  // one line, flushed
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  FILE* f_ = nullptr;
};

std::string format_duration(double seconds);  // "1:02:03"
std::string format_count(double n);           // "12,345"

}  // namespace mousse
