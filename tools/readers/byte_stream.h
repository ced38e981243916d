// Sequential byte streams over plain, gzip and zstd files (decompressed on the fly).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mousse::tok {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads up to n bytes; returns 0 at the end. Throws InputError on I/O or decompression errors.
  virtual size_t read(char* dst, size_t n) = 0;
  virtual uint64_t consumed() const = 0;  // bytes of the file consumed
  virtual uint64_t total() const = 0;     // size of the file
};

// Picks the decompressor from the file name (.gz, .zst/.zstd, else plain).
std::unique_ptr<ByteStream> open_byte_stream(const std::string& path);

// The unread part of a stream that a reader scans for line or section ends: buf[start, size) is
// read but not yet consumed. refill() keeps that part, moves it to the front and appends the
// next read; reads grow from 16 KiB to 1 MiB, so a small file costs no more than it holds.
struct StreamWindow {
  std::string buf;
  size_t start = 0;
  bool eof = false;  // the stream returned 0 bytes

  void refill(ByteStream& stream) {
    buf.erase(0, start);
    start = 0;
    const size_t old = buf.size();
    const size_t want = std::max(chunk_, old);
    chunk_ = std::min<size_t>(chunk_ * 2, 1 << 20);
    buf.resize(old + want);
    const size_t got = stream.read(&buf[old], want);
    buf.resize(old + got);
    if (got == 0) eof = true;
  }

 private:
  size_t chunk_ = 1 << 14;
};

}  // namespace mousse::tok
