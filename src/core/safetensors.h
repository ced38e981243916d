#pragma once
// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str:
// str}} (starting with '{', possibly padded with spaces), then the raw little-endian tensor
// bytes. Used for `mousse export`, `init_from` and checkpoints.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace mousse {

const char* safetensors_dtype(DType dt);  // "F32", "F64", "BF16", "I32"

class SafeTensorsWriter {
 public:
  // `produce` fills `bytes` bytes at dst when the tensor is written (one tensor in memory at a
  // time, so multi-GB checkpoints need no host copy of everything).
  void add(const std::string& name, DType dt, Shape shape,
           std::function<void(void* dst)> produce);
  void set_metadata(const std::string& key, const std::string& value);
  // Writes to a temporary file next to `path`, flushes it to disk, then renames it into place:
  // a reader never sees a partial file under `path`. Tensor names must be unique and not
  // "__metadata__".
  void write_atomic(const std::string& path) const;

 private:
  struct Item { std::string name; DType dtype; Shape shape; std::function<void(void*)> produce; };
  std::vector<Item> items_;
  std::map<std::string, std::string> metadata_;
};

class SafeTensorsFile {
 public:
  struct Entry { std::string name; DType dtype; Shape shape; uint64_t begin, end; };
  // Reads and validates the header by the format's rules; errors name the file. Rejected: a
  // header length beyond the file or 100 MB, a header that is not one JSON object starting with
  // '{' (trailing whitespace allowed), duplicate keys, unknown dtypes, shapes and data_offsets
  // that are not non-negative integers, a size that is not product(shape) × dtype size, and
  // offsets that do not tile the data exactly (holes, overlaps, bytes after the last tensor).
  // __metadata__ must map strings to strings. Beyond the format: mousse reads the dtypes F32,
  // F64, BF16 and I32 and at most 4 dimensions.
  explicit SafeTensorsFile(const std::string& path);
  const std::string& path() const { return path_; }
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The metadata value `key` parsed as JSON (null when absent); an error names the file and the
  // key when it is not valid JSON.
  nlohmann::json metadata_json(const std::string& key) const;
  // Reads tensor `name` converted to `dt` (f32/f64/bf16 convert among themselves) into dst,
  // checking that its shape is `expect` (errors name the file, tensor and both shapes).
  void read(const std::string& name, DType dt, Shape expect, void* dst) const;
  // Reads elements [first, first + count) of tensor `name` (row-major order) converted to `dt`
  // into dst, reading only those bytes of the file (a rank's part of a sharded state tensor).
  void read_elements(const std::string& name, DType dt, int64_t first, int64_t count,
                     void* dst) const;

 private:
  std::string path_;
  uint64_t data_start_ = 0;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// bf16 <-> f32 on the host (round to nearest even).
uint16_t float_to_bf16(float f);
float bf16_to_float(uint16_t b);

}  // namespace mousse
