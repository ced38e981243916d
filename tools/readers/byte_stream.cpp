#include "byte_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>
#include <zlib.h>
#include <zstd.h>

#include "input_error.h"

namespace mousse::tok {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

class FileStream : public ByteStream {
 public:
  // Regular files and pipes (a FIFO, or process substitution's /dev/fd/N) are read; a device such
  // as /dev/zero or a terminal is refused, since it would be read without end.
  explicit FileStream(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) throw InputError(path, "", "cannot open: " + errno_message());
    struct stat st;
    std::string bad;
    if (fstat(fd_, &st) != 0) bad = "cannot stat: " + errno_message();
    else if (S_ISDIR(st.st_mode)) bad = "is a directory";
    else if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) bad = "not a regular file or a pipe (a device or a socket)";
    if (!bad.empty()) {
      ::close(fd_);
      throw InputError(path, "", bad);
    }
    size_ = uint64_t(st.st_size);
  }
  ~FileStream() override { ::close(fd_); }
  size_t read(char* dst, size_t n) override {
    while (true) {
      ssize_t r = ::read(fd_, dst, n);
      if (r < 0) {
        if (errno == EINTR) continue;
        throw InputError(path_, "byte offset " + std::to_string(pos_), "read error: " + errno_message());
      }
      pos_ += uint64_t(r);
      return size_t(r);
    }
  }
  uint64_t consumed() const override { return pos_; }
  uint64_t total() const override { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0, pos_ = 0;
};

class GzipStream : public ByteStream {
 public:
  explicit GzipStream(const std::string& path) : file_(path), in_(1 << 17) {
    if (inflateInit2(&zs_, 15 + 32) != Z_OK) throw InputError(path, "", "zlib init failed");
  }
  ~GzipStream() override { inflateEnd(&zs_); }
  size_t read(char* dst, size_t n) override {
    zs_.next_out = reinterpret_cast<Bytef*>(dst);
    zs_.avail_out = uInt(n);
    while (zs_.avail_out == n) {
      if (zs_.avail_in == 0) {
        size_t r = file_.read(in_.data(), in_.size());
        if (r == 0) {
          if (started_ && !ended_)
            throw InputError(file_.path(), "byte offset " + std::to_string(file_.consumed()),
                             "truncated gzip stream (" + std::to_string(out_) + " bytes decompressed)");
          return 0;
        }
        zs_.next_in = reinterpret_cast<Bytef*>(in_.data());
        zs_.avail_in = uInt(r);
      }
      if (ended_) {  // another gzip member follows, or zero bytes padding the end (skipped, as gzip(1)
                     // and Python's gzip module skip them)
        while (zs_.avail_in > 0 && *zs_.next_in == 0) {
          ++zs_.next_in;
          --zs_.avail_in;
        }
        if (zs_.avail_in == 0) continue;
        if (inflateReset(&zs_) != Z_OK) throw InputError(file_.path(), "", "zlib reset failed");
        ended_ = false;
      }
      started_ = true;
      int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        ended_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        throw InputError(file_.path(), "compressed byte offset " + std::to_string(file_.consumed() - zs_.avail_in),
                         std::string("corrupt gzip data: ") + (zs_.msg ? zs_.msg : "inflate error"));
      }
    }
    size_t got = n - zs_.avail_out;
    out_ += got;
    return got;
  }
  uint64_t consumed() const override { return file_.consumed(); }
  uint64_t total() const override { return file_.total(); }

 private:
  FileStream file_;
  std::vector<char> in_;
  z_stream zs_{};
  bool ended_ = false, started_ = false;
  uint64_t out_ = 0;
};

class ZstdStream : public ByteStream {
 public:
  explicit ZstdStream(const std::string& path) : file_(path), in_(ZSTD_DStreamInSize()) {
    ds_ = ZSTD_createDStream();
    if (!ds_) throw InputError(path, "", "zstd init failed");
    ZSTD_initDStream(ds_);
  }
  ~ZstdStream() override { ZSTD_freeDStream(ds_); }
  size_t read(char* dst, size_t n) override {
    ZSTD_outBuffer out{dst, n, 0};
    while (out.pos == 0) {
      if (ib_.pos == ib_.size) {
        size_t r = file_.read(in_.data(), in_.size());
        if (r == 0) {
          if (last_ret_ != 0)
            throw InputError(file_.path(), "byte offset " + std::to_string(file_.consumed()), "truncated zstd stream");
          return 0;
        }
        ib_ = ZSTD_inBuffer{in_.data(), r, 0};
      }
      size_t ret = ZSTD_decompressStream(ds_, &out, &ib_);
      if (ZSTD_isError(ret))
        throw InputError(file_.path(), "compressed byte offset " + std::to_string(file_.consumed() - (ib_.size - ib_.pos)),
                         std::string("corrupt zstd data: ") + ZSTD_getErrorName(ret));
      last_ret_ = ret;
    }
    return out.pos;
  }
  uint64_t consumed() const override { return file_.consumed(); }
  uint64_t total() const override { return file_.total(); }

 private:
  FileStream file_;
  std::vector<char> in_;
  ZSTD_DStream* ds_ = nullptr;
  ZSTD_inBuffer ib_{nullptr, 0, 0};
  size_t last_ret_ = 0;
};

}  // namespace

std::unique_ptr<ByteStream> open_byte_stream(const std::string& path) {
  if (ends_with(path, ".gz")) return std::make_unique<GzipStream>(path);
  if (ends_with(path, ".zst") || ends_with(path, ".zstd")) return std::make_unique<ZstdStream>(path);
  return std::make_unique<FileStream>(path);
}

}  // namespace mousse::tok
