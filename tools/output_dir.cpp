#include "output_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace mousse::tok {

namespace {
// `rest` is "val_NNNNNN.bin" or "train_NNNNNN.bin" (six digits or more).
bool is_shard_suffix(const std::string& rest) {
  size_t p;
  if (rest.rfind("val_", 0) == 0) p = 4;
  else if (rest.rfind("train_", 0) == 0) p = 6;
  else return false;
  if (rest.size() < p + 6 + 4 || rest.compare(rest.size() - 4, 4, ".bin") != 0) return false;
  for (size_t i = p; i < rest.size() - 4; ++i)
    if (rest[i] < '0' || rest[i] > '9') return false;
  return true;
}
}  // namespace

bool is_shard_of(const std::string& f, const std::string& name) {
  return f.size() > name.size() + 1 && f.compare(0, name.size(), name) == 0 && f[name.size()] == '_' &&
         is_shard_suffix(f.substr(name.size() + 1));
}

bool is_partial_shard_of(const std::string& f, const std::string& name) {
  const std::string tail = ".partial";
  return f.size() > 1 + tail.size() && f[0] == '.' && f.compare(f.size() - tail.size(), tail.size(), tail) == 0 &&
         is_shard_of(f.substr(1, f.size() - 1 - tail.size()), name);
}

std::vector<std::string> list_dir(const std::string& dir, bool (*pred)(const std::string&, const std::string&),
                                  const std::string& name) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    std::string f = it->path().filename().string();
    if (pred(f, name)) out.push_back(f);
  }
  if (ec) throw std::runtime_error("cannot list " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::string OutputLock::acquire(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/." + name + ".lock";
  // The run before us removes the file when it ends: if that happens between our open() and our
  // flock(), we hold a lock on a file nobody else sees, so check that the path is still our file.
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return "cannot create " + path + ": " + std::strerror(errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      if (err == ENOLCK || err == ENOSYS || err == EOPNOTSUPP || err == EINVAL) {
        // a file system without locks (some network and FUSE mounts): go on, and say so
        warning_ = "cannot lock " + path + " (" + std::strerror(err) + "); make sure no other run writes " + name +
                   "_*.bin shards in " + dir;
        fd_ = fd;
        path_ = path;
        return "";
      }
      ::close(fd);
      if (err == EWOULDBLOCK)
        return "another mousse-tokenize run is writing " + name + "_*.bin shards in " + dir + " (it holds " + path + ")";
      return "cannot lock " + path + ": " + std::strerror(err);
    }
    struct stat a, b;
    if (::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      fd_ = fd;
      path_ = path;
      return "";
    }
    ::close(fd);
  }
  return "cannot lock " + path + " (it keeps being replaced)";
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still holding the lock: see acquire()
  ::close(fd_);
}

}  // namespace mousse::tok
