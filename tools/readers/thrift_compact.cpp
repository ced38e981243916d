#include "thrift_compact.h"

namespace mousse::tok {

uint8_t ThriftReader::byte() {
  if (pos_ >= n_) throw ThriftError("thrift: unexpected end of data", pos_, true);
  return p_[pos_++];
}

uint64_t ThriftReader::varint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    uint8_t b = byte();
    v |= uint64_t(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
  throw ThriftError("thrift: varint too long", pos_, false);
}

void ThriftReader::begin_struct() {
  if (depth_ >= 64) throw ThriftError("thrift: nesting too deep", pos_, false);
  stack_[depth_++] = last_id_;
  last_id_ = 0;
}

void ThriftReader::end_struct() {
  if (depth_ == 0) throw ThriftError("thrift: unbalanced struct", pos_, false);
  last_id_ = stack_[--depth_];
}

bool ThriftReader::next_field(int16_t* id, uint8_t* type) {
  uint8_t b = byte();
  if (b == kTStop) return false;
  uint8_t t = b & 0x0F, delta = b >> 4;
  if (t > kTStruct) throw ThriftError("thrift: bad field type " + std::to_string(t), pos_ - 1, false);
  if (delta) {
    last_id_ = int16_t(last_id_ + delta);
  } else {
    uint64_t z = varint();
    last_id_ = int16_t((z >> 1) ^ -(int64_t)(z & 1));
  }
  *id = last_id_;
  *type = t;
  return true;
}

bool ThriftReader::read_bool(uint8_t field_type) {
  if (field_type == kTTrue) return true;
  if (field_type == kTFalse) return false;
  // bool stored as a byte (list elements)
  return byte() == 1;
}

int32_t ThriftReader::read_i32() {
  uint64_t z = varint();
  return int32_t((z >> 1) ^ -(int64_t)(z & 1));
}

int64_t ThriftReader::read_i64() {
  uint64_t z = varint();
  return int64_t((z >> 1) ^ -(int64_t)(z & 1));
}

std::string ThriftReader::read_binary() {
  uint64_t len = varint();
  if (len > n_ - pos_) throw ThriftError("thrift: string runs past the end of data", pos_, true);
  std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
  pos_ += len;
  return s;
}

void ThriftReader::read_list_header(uint8_t* elem_type, uint32_t* size) {
  uint8_t b = byte();
  uint32_t n = b >> 4;
  if (n == 15) {
    uint64_t v = varint();
    if (v > (1u << 30)) throw ThriftError("thrift: list too long", pos_, false);
    n = uint32_t(v);
  }
  *elem_type = b & 0x0F;
  *size = n;
}

void ThriftReader::skip(uint8_t type, int depth) {
  if (depth > 64) throw ThriftError("thrift: nesting too deep", pos_, false);
  switch (type) {
    case kTTrue:
    case kTFalse:
      return;
    case kTByte:
      byte();
      return;
    case kTI16:
    case kTI32:
    case kTI64:
      varint();
      return;
    case kTDouble:
      for (int i = 0; i < 8; ++i) byte();
      return;
    case kTBinary: {
      uint64_t len = varint();
      if (len > n_ - pos_) throw ThriftError("thrift: string runs past the end of data", pos_, true);
      pos_ += len;
      return;
    }
    case kTList:
    case kTSet: {
      uint8_t et;
      uint32_t n;
      read_list_header(&et, &n);
      for (uint32_t i = 0; i < n; ++i) {
        if (et == kTTrue || et == kTFalse) byte();
        else skip(et, depth + 1);
      }
      return;
    }
    case kTMap: {
      uint64_t n = varint();
      if (n == 0) return;
      uint8_t kv = byte();
      for (uint64_t i = 0; i < n; ++i) {
        for (uint8_t t : {uint8_t(kv >> 4), uint8_t(kv & 0x0F)}) {
          if (t == kTTrue || t == kTFalse) byte();
          else skip(t, depth + 1);
        }
      }
      return;
    }
    case kTStruct: {
      begin_struct();
      int16_t id;
      uint8_t t;
      while (next_field(&id, &t)) skip(t, depth + 1);
      end_struct();
      return;
    }
    default:
      throw ThriftError("thrift: cannot skip type " + std::to_string(type), pos_, false);
  }
}

}  // namespace mousse::tok
