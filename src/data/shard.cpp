#include "data/shard.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/error.h"

namespace mousse {
namespace {

// The format is little-endian; so are all hosts we build for (x86-64, aarch64).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "llm.c shards are little-endian");

std::string errno_text(int err) { return std::strerror(err); }

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

[[noreturn]] void not_regular(const std::string& path, mode_t mode) {
  fail("shard ", path, ": is ", file_kind(mode),
       ", not a regular file: expected an llm.c .bin token shard");
}

// Opens a shard for reading without ever blocking: a FIFO or device is refused from stat()
// before open(), and O_NONBLOCK covers a file replaced by one in between (open() of a FIFO
// would otherwise wait for a writer forever); fstat() then checks what was opened.
int open_for_read(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) fail("shard ", path, ": file not found");
    fail("shard ", path, ": cannot stat (", errno_text(err), ")");
  }
  if (!S_ISREG(st.st_mode)) not_regular(path, st.st_mode);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) fail("shard ", path, ": file not found");
    fail("shard ", path, ": cannot open (", errno_text(err), ")");
  }
  return fd;
}

int64_t file_size(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) fail("shard ", path, ": cannot stat (", errno_text(errno), ")");
  if (!S_ISREG(st.st_mode)) not_regular(path, st.st_mode);
  return static_cast<int64_t>(st.st_size);
}

// Reads exactly `bytes` at `offset`, or fails naming the file and the offset.
void pread_all(int fd, const std::string& path, void* dst, int64_t bytes, int64_t offset) {
  auto* p = static_cast<char*>(dst);
  int64_t done = 0;
  while (done < bytes) {
    ssize_t r = ::pread(fd, p + done, static_cast<size_t>(bytes - done), offset + done);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail("shard ", path, ": read error at byte offset ", offset + done, " (", errno_text(errno),
           ")");
    }
    if (r == 0)
      fail("shard ", path, ": unexpected end of file at byte offset ", offset + done, " (wanted ",
           bytes, " bytes from offset ", offset, "); was the file truncated while training?");
    done += r;
  }
}

struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

}  // namespace

ShardHeader read_shard_header(const std::string& path) {
  FdGuard g{open_for_read(path)};
  const int64_t size = file_size(g.fd, path);
  if (size < kShardHeaderBytes)
    fail("shard ", path, ": file is ", size, " bytes, smaller than the ", kShardHeaderBytes,
         "-byte llm.c header (truncated, or not a token shard)");
  int32_t header[kShardHeaderInts];
  pread_all(g.fd, path, header, kShardHeaderBytes, 0);
  if (header[0] != kShardMagic) {
    if (header[0] == 20240801)
      fail("shard ", path, ": magic 20240801 is llm.c's Llama-3 format (uint32 tokens); expected a "
           "GPT-2 shard with magic ", kShardMagic);
    fail("shard ", path, ": bad magic number: expected ", kShardMagic, ", found ", header[0],
         " (not an llm.c token shard)");
  }
  if (header[1] != kShardVersion)
    fail("shard ", path, ": unsupported version: expected ", kShardVersion, ", found ", header[1]);
  const int64_t ntok = header[2];
  if (ntok < 0) fail("shard ", path, ": header says ", ntok, " tokens (negative; corrupt header)");
  const int64_t expected = kShardHeaderBytes + 2 * ntok;
  if (size != expected)
    fail("shard ", path, ": size mismatch: header says ", ntok, " tokens, so the file should be ",
         expected, " bytes (1024 + 2·", ntok, "), but it is ", size, " bytes",
         size < expected ? " (truncated)" : " (trailing data; corrupt)");
  return ShardHeader{path, ntok};
}

std::vector<std::string> expand_globs(const std::vector<std::string>& patterns) {
  if (patterns.empty()) fail("no data files given: expected at least one shard path or glob");
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& pattern : patterns) {
    glob_t g;
    std::memset(&g, 0, sizeof g);
    const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    std::vector<std::string> matches;
    if (rc == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i) matches.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    if (rc == GLOB_NOMATCH || (rc == 0 && matches.empty())) {
      if (has_glob_chars(pattern)) fail("no files match the glob '", pattern, "'");
      fail("shard ", pattern, ": file not found");
    }
    if (rc != 0) fail("cannot expand the glob '", pattern, "' (glob error ", rc, ")");
    std::sort(matches.begin(), matches.end());
    for (auto& m : matches)
      if (seen.insert(m).second) out.push_back(std::move(m));
  }
  return out;
}

void write_shard(const std::string& path, const uint16_t* tokens, int64_t count) {
  if (count < 0 || count > INT32_MAX)
    fail("write_shard ", path, ": ", count, " tokens do not fit an llm.c header (max ", INT32_MAX,
         ")");
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("write_shard ", path, ": cannot create ", tmp, " (", errno_text(errno), ")");
  auto write_all = [&](const void* src, int64_t bytes) {
    const char* p = static_cast<const char*>(src);
    while (bytes > 0) {
      ssize_t w = ::write(fd, p, static_cast<size_t>(std::min<int64_t>(bytes, 1 << 30)));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        fail("write_shard ", path, ": write to ", tmp, " failed (", errno_text(err), ")");
      }
      p += w;
      bytes -= w;
    }
  };
  int32_t header[kShardHeaderInts] = {};
  header[0] = kShardMagic;
  header[1] = kShardVersion;
  header[2] = static_cast<int32_t>(count);
  write_all(header, kShardHeaderBytes);
  write_all(tokens, 2 * count);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("write_shard ", path, ": cannot flush ", tmp, " (", errno_text(err), ")");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail("write_shard ", path, ": cannot rename ", tmp, " into place (", errno_text(err), ")");
  }
}

void write_shard(const std::string& path, const std::vector<uint16_t>& tokens) {
  write_shard(path, tokens.data(), static_cast<int64_t>(tokens.size()));
}

// ---- ShardReader ----

ShardReader::ShardReader(const ShardHeader& header) : header_(header) {
  fd_ = open_for_read(header.path);
  int64_t size = 0;
  try {
    size = file_size(fd_, header.path);
  } catch (...) {
    close();
    throw;
  }
  const int64_t expected = kShardHeaderBytes + 2 * header.num_tokens;
  if (size != expected) {
    close();
    fail("shard ", header.path, ": size changed since it was opened: expected ", expected,
         " bytes (", header.num_tokens, " tokens), found ", size, " bytes");
  }
}

ShardReader::~ShardReader() { close(); }

ShardReader::ShardReader(ShardReader&& o) noexcept : header_(std::move(o.header_)), fd_(o.fd_) {
  o.fd_ = -1;
}

ShardReader& ShardReader::operator=(ShardReader&& o) noexcept {
  if (this != &o) {
    close();
    header_ = std::move(o.header_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void ShardReader::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void ShardReader::read(int64_t first, int64_t count, uint16_t* out) const {
  MOUSSE_CHECK(fd_ >= 0, "ShardReader::read on a closed reader");
  MOUSSE_CHECK(first >= 0 && count >= 0 && first + count <= header_.num_tokens, "tokens [", first,
               ", ", first + count, ") outside shard ", header_.path, " of ", header_.num_tokens);
  pread_all(fd_, header_.path, out, 2 * count, kShardHeaderBytes + 2 * first);
}

}  // namespace mousse
