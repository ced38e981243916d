// A small decoder for the Thrift compact protocol, enough for Parquet's footer and page headers.
// Throws ThriftError (with the byte offset inside the buffer) on malformed or truncated input.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mousse::tok {

class ThriftError : public std::runtime_error {
 public:
  ThriftError(const std::string& what, size_t offset, bool truncated)
      : std::runtime_error(what), offset(offset), truncated(truncated) {}
  size_t offset;
  bool truncated;  // ran past the end of the buffer (more bytes might fix it)
};

enum ThriftType : uint8_t {
  kTStop = 0, kTTrue = 1, kTFalse = 2, kTByte = 3, kTI16 = 4, kTI32 = 5, kTI64 = 6,
  kTDouble = 7, kTBinary = 8, kTList = 9, kTSet = 10, kTMap = 11, kTStruct = 12
};

class ThriftReader {
 public:
  ThriftReader(const uint8_t* data, size_t size) : p_(data), n_(size) {}

  // Struct traversal: call begin_struct(), then next_field() until it returns false, then end_struct().
  void begin_struct();
  bool next_field(int16_t* id, uint8_t* type);
  void end_struct();

  bool read_bool(uint8_t field_type);  // field-level bool (type carries the value)
  int32_t read_i32();
  int64_t read_i64();
  std::string read_binary();
  void read_list_header(uint8_t* elem_type, uint32_t* size);
  void skip(uint8_t type, int depth = 0);
  size_t position() const { return pos_; }

 private:
  uint8_t byte();
  uint64_t varint();
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  int16_t last_id_ = 0;
  int16_t stack_[64];
  int depth_ = 0;
};

}  // namespace mousse::tok
