#include "fuzz_common.h"

#include <cxxabi.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <typeinfo>

namespace mousse::fuzz {

namespace {
struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/mousse-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::fprintf(stderr, "fuzz: cannot create a temporary directory %s: %s\n", tmpl.c_str(), std::strerror(errno));
      std::abort();
    }
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
}  // namespace

std::string write_input(const uint8_t* data, size_t size, const std::string& file_name) {
  static TempDir dir;
  std::string path = dir.path + "/" + file_name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0;
  for (size_t done = 0; ok && done < size;) {
    ssize_t w = ::write(fd, data + done, size - done);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) done += size_t(w);
  }
  if (fd >= 0) ok = (::close(fd) == 0) && ok;
  if (!ok) {
    std::fprintf(stderr, "fuzz: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    std::abort();
  }
  return path;
}

void unexpected(const char* target, const std::exception& e) {
  int status = 0;
  char* name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
  std::fprintf(stderr, "fuzz target %s: unexpected exception %s: %s\n", target, status == 0 && name ? name : typeid(e).name(),
               e.what());
  std::free(name);
  std::abort();
}

}  // namespace mousse::fuzz
