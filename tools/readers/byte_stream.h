// Sequential byte streams over plain, gzip and zstd files (decompressed on the fly).
#pragma once
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

}  // namespace mousse::tok
