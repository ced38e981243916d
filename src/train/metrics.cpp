#include "train/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "train/atomic_file.h"

namespace mousse {

MetricsLog::MetricsLog(const std::string& dir, int64_t keep_until_step) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("cannot create log directory ", dir, ": ", ec.message());
  path_ = dir + "/metrics.jsonl";
  if (keep_until_step >= 0) {
    // A resumed run: the records of the interrupted attempt after the checkpoint's step are
    // dropped. The file is replaced atomically, so a kill in the middle of this leaves the old
    // log whole.
    std::string kept;
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;  // a line cut by a crash
      if (j.contains("step") && j["step"].is_number() && j["step"].get<int64_t>() > keep_until_step)
        continue;
      kept += line + "\n";
    }
    if (in.bad()) fail("cannot read ", path_, ": ", std::strerror(errno));
    write_file_atomic(path_, kept);
    f_ = std::fopen(path_.c_str(), "a");
  } else {
    f_ = std::fopen(path_.c_str(), "w");  // a fresh run: train/run_dir.h made sure it was empty
  }
  if (!f_) fail("cannot write ", path_, ": ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::check(bool ok) {
  if (ok) return;
  const int err = errno;
  std::fclose(f_);
  f_ = nullptr;
  fail("cannot write ", path_, ": ", std::strerror(err),
       err == ENOSPC || err == EDQUOT ? " (the disk is full)" : "",
       "; the run stops rather than go on without its log");
}

void MetricsLog::write(const json& record) {
  MOUSSE_CHECK(f_, "MetricsLog::write after close or a failed write");
  std::string s = record.dump(-1, ' ', false, json::error_handler_t::replace);
  s += '\n';
  errno = 0;
  check(std::fwrite(s.data(), 1, s.size(), f_) == s.size() && std::fflush(f_) == 0);
}

namespace {
// fsync, where the file can be synced at all (not a pipe or a terminal given as the log).
bool sync_file(FILE* f) { return ::fsync(fileno(f)) == 0 || errno == EINVAL; }
}  // namespace

void MetricsLog::sync() {
  MOUSSE_CHECK(f_, "MetricsLog::sync after close or a failed write");
  errno = 0;
  check(std::fflush(f_) == 0 && sync_file(f_));
}

void MetricsLog::close() {
  if (!f_) return;
  errno = 0;
  bool ok = std::fflush(f_) == 0 && sync_file(f_);
  int err = errno;
  if (std::fclose(f_) != 0 && ok) {
    ok = false;
    err = errno;
  }
  f_ = nullptr;
  if (!ok) fail("cannot write ", path_, ": ", std::strerror(err), "; the end of the run may be missing from it");
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = long(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

std::string format_count(double n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", n);
  std::string d = buf, out;
  int len = int(d.size());
  for (int i = 0; i < len; i++) {
    out += d[i];
    int rem = len - 1 - i;
    if (rem > 0 && rem % 3 == 0 && d[i] != '-') out += ',';
  }
  return out;
}

namespace {
void merge_into(json& dst, const json& src) {
  for (auto it = src.begin(); it != src.end(); ++it) {
    const std::string& key = it.key();
    if (!dst.contains(key)) {
      dst[key] = *it;
    } else if (dst[key].is_object() && it->is_object()) {
      merge_into(dst[key], *it);
    } else if (it->is_number() && dst[key].is_number()) {
      const bool sum = key == "update_sum_squares" || key == "update_count" ||
                       (key.size() > 9 && key.compare(key.size() - 9, 9, "_failures") == 0);
      if (sum) dst[key] = dst[key].get<double>() + it->get<double>();
      else if (key.find("_seconds") != std::string::npos)
        dst[key] = std::max(dst[key].get<double>(), it->get<double>());
    }
  }
}
void recompute_rms(json& j) {
  if (!j.is_object()) return;
  if (j.contains("update_sum_squares") && j.contains("update_count")) {
    const double n = j["update_count"].get<double>();
    j["update_rms"] = n > 0 ? std::sqrt(j["update_sum_squares"].get<double>() / n) : 0.0;
  }
  for (auto& v : j) recompute_rms(v);
}
}  // namespace

json merge_rank_diagnostics(const std::vector<json>& per_rank) {
  json out = per_rank.empty() ? json::object() : per_rank[0];
  for (size_t r = 1; r < per_rank.size(); r++) merge_into(out, per_rank[r]);
  recompute_rms(out);
  return out;
}

}  // namespace mousse
