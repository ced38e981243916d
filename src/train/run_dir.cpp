#include "train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "train/run_config.h"

namespace mousse {

namespace fs = std::filesystem;

namespace {

const char* kLockName = "mousse.lock";

// Names mousse writes. A checkpoint file: ckpt_<step>.safetensors or a rank's shard of it; a
// temporary: any of those, or a log, followed by .tmp.<pid> (train/atomic_file.h).
const std::regex kCheckpointFile(R"(ckpt_[0-9]+(\.rank[0-9]+-of-[0-9]+)?\.safetensors(\.tmp\.[0-9]+)?)");
const std::regex kTemporary(
    R"((ckpt_[0-9]+(\.rank[0-9]+-of-[0-9]+)?\.safetensors|metrics\.jsonl|config\.json)\.tmp\.[0-9]+)");

std::string host_name() {
  char h[256] = {0};
  if (::gethostname(h, sizeof h - 1) != 0) return "?";
  return h;
}

// Regular files of `dir` whose names match `re`, sorted by name.
std::vector<std::string> matching_files(const std::string& dir, const std::regex& re) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (std::regex_match(name, re) && it->is_regular_file(ec)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool same_directory(const std::string& a, const std::string& b) {
  std::error_code ec;
  const bool eq = fs::equivalent(a, b, ec);
  return !ec && eq;
}

// Takes the run's lock on `dir`; returns the open descriptor (the lock lasts while it is open),
// or -1 where the filesystem has no locks (after a warning).
int lock_directory(const std::string& dir, const std::string& key, bool print) {
  const std::string path = (fs::path(dir) / kLockName).string();
  // No O_TRUNC: the file may be another run's, holding its pid.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail(key, " ", dir, ": cannot create the lock file ", path, " (", std::strerror(errno), ")");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      char holder[256] = {0};
      const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
      ::close(fd);
      std::string who = n > 0 ? std::string(holder, size_t(n)) : "";
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      fail(key, " ", dir, " is in use by another mousse train (",
           who.empty() ? std::string("its pid is not recorded") : who, ", lock file ", path,
           "): two runs in one directory would mix their checkpoints and logs. Wait for it to ",
           "end or stop it, or give this run another directory (--set log.dir=... or ",
           "checkpoint.dir=...)");
    }
    ::close(fd);
    if (err == ENOLCK || err == EOPNOTSUPP || err == ENOSYS) {
      if (print)
        std::printf("warning: %s %s: the filesystem does not support locks (%s): nothing stops a "
                    "second run from using this directory at the same time\n",
                    key.c_str(), dir.c_str(), std::strerror(err));
      return -1;
    }
    fail(key, " ", dir, ": cannot lock ", path, " (", std::strerror(err), ")");
  }
  const std::string me = "pid " + std::to_string(::getpid()) + " on " + host_name() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != ssize_t(me.size())) {
    const int err = errno;
    ::close(fd);
    fail(key, " ", dir, ": cannot write the lock file ", path, " (", std::strerror(err), ")");
  }
  return fd;
}

// Whether a fresh start would clobber a run: a log with records, or checkpoint files.
bool holds_run(const std::string& log_dir, const std::string& ckpt_dir) {
  struct stat st;
  const std::string metrics = (fs::path(log_dir) / "metrics.jsonl").string();
  if (::stat(metrics.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) return true;
  for (const std::string& n : matching_files(ckpt_dir, kCheckpointFile))
    if (n.find(".tmp.") == std::string::npos) return true;  // a temporary alone is no run
  return false;
}

std::string list(const std::vector<std::string>& names, size_t at_most = 4) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < at_most; i++) s += (i ? ", " : "") + names[i];
  if (names.size() > at_most) s += ", ... (" + std::to_string(names.size()) + " files)";
  return s;
}

}  // namespace

void check_writable_directory(const std::string& dir, const std::string& key) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(key, " ", dir, ": cannot create the directory (", ec.message(), ")");
  if (!fs::is_directory(dir, ec)) fail(key, " ", dir, ": not a directory");
  const std::string probe = (fs::path(dir) / (".mousse-probe." + host_name() + "." +
                                              std::to_string(::getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fail(key, " ", dir, ": cannot create a file there (", std::strerror(errno),
         "); the run would lose its work at the first checkpoint or log line");
  const char byte = '\n';
  const bool wrote = ::write(fd, &byte, 1) == 1;
  const int err = errno;
  const bool closed = ::close(fd) == 0;
  const bool removed = ::unlink(probe.c_str()) == 0;
  if (!wrote || !closed)
    fail(key, " ", dir, ": cannot write a file there (", std::strerror(err), ")");
  if (!removed)
    fail(key, " ", dir, ": cannot remove a file there (", std::strerror(errno),
         "); old checkpoints could not be pruned");
}

std::vector<std::string> earlier_run_files(const std::string& log_dir, const std::string& ckpt_dir) {
  std::vector<std::string> out;
  for (const char* name : {"metrics.jsonl", "config.json"}) {
    const fs::path p = fs::path(log_dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) out.push_back(p.string());
  }
  for (const std::string& n : matching_files(ckpt_dir, kCheckpointFile))
    out.push_back((fs::path(ckpt_dir) / n).string());
  return out;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  for (const std::string& n : matching_files(dir, kTemporary)) {
    const std::string p = (fs::path(dir) / n).string();
    if (::unlink(p.c_str()) != 0) fail("cannot remove ", p, ", left by a killed write: ", std::strerror(errno));
    removed.push_back(n);
  }
  return removed;
}

RunDirectories::RunDirectories(const RunConfig& cfg, const RunDirOptions& opt) {
  try {
    claim(cfg, opt);
  } catch (...) {
    for (int fd : lock_fds_) ::close(fd);
    throw;
  }
}

void RunDirectories::claim(const RunConfig& cfg, const RunDirOptions& opt) {
  const std::string& log_dir = cfg.log.dir;
  const std::string& ckpt_dir = cfg.checkpoint.dir;
  if (opt.resume && opt.overwrite)
    fail("--resume continues the run in ", log_dir, ", --overwrite replaces it: give one of them");
  check_writable_directory(log_dir, "log.dir");
  std::vector<std::pair<std::string, std::string>> dirs = {{log_dir, "log.dir"}};
  const bool one_dir = same_directory(log_dir, ckpt_dir);
  if (!one_dir) {
    check_writable_directory(ckpt_dir, "checkpoint.dir");
    dirs.push_back({ckpt_dir, "checkpoint.dir"});
  }

  // The resolved config is written to log.dir/config.json: never over the file the run reads.
  const fs::path written = fs::path(log_dir) / "config.json";
  std::error_code ec;
  if (!cfg.file.empty() && fs::equivalent(cfg.file, written, ec) && !ec)
    fail("log.dir ", log_dir, " holds the config this run reads (", cfg.file,
         "), and the run writes its resolved config to ", written.string(),
         ": keep the config elsewhere or choose another log.dir");

  for (const auto& [dir, key] : dirs) {
    const int fd = lock_directory(dir, key, opt.print);
    if (fd >= 0) lock_fds_.push_back(fd);
  }

  if (!opt.resume && holds_run(log_dir, ckpt_dir)) {
    const std::vector<std::string> files = earlier_run_files(log_dir, ckpt_dir);
    std::vector<std::string> names;
    for (const std::string& f : files) names.push_back(fs::path(f).filename().string());
    if (!opt.overwrite) {
      const bool logged = names.front() == "metrics.jsonl";
      fail(logged ? "log.dir " + log_dir : "checkpoint.dir " + ckpt_dir, " already holds a run (",
           list(names), "): continue it with --resume, start this one in a fresh directory ",
           "(--set log.dir=...), or replace it with --overwrite (which deletes those files first)");
    }
    for (const std::string& f : files)
      if (::unlink(f.c_str()) != 0 && errno != ENOENT)
        fail("--overwrite: cannot remove ", f, " (", std::strerror(errno), ")");
    if (opt.print)
      std::printf("--overwrite: removed the earlier run's %zu file(s) from %s: %s\n", files.size(),
                  one_dir ? log_dir.c_str() : (log_dir + " and " + ckpt_dir).c_str(),
                  list(names, 6).c_str());
  }

  for (const auto& [dir, key] : dirs) {
    const std::vector<std::string> removed = remove_stale_temporaries(dir);
    if (opt.print && !removed.empty())
      std::printf("removed %zu temporary file(s) left by a killed write from %s: %s\n",
                  removed.size(), dir.c_str(), list(removed).c_str());
  }
  if (opt.print) std::fflush(stdout);
}

RunDirectories::~RunDirectories() {
  for (int fd : lock_fds_) ::close(fd);
}

}  // namespace mousse
