#include "core/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_config.h"

namespace mousse {

using json = nlohmann::json;

const char* safetensors_dtype(DType dt) {
  switch (dt) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
  }
  return "?";
}

static bool dtype_from_safetensors(const std::string& s, DType& out) {
  if (s == "F32") out = DType::f32;
  else if (s == "F64") out = DType::f64;
  else if (s == "BF16") out = DType::bf16;
  else if (s == "I32") out = DType::i32;
  else return false;
  return true;
}

uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void SafeTensorsWriter::add(const std::string& name, DType dt, Shape shape,
                            std::function<void(void*)> produce) {
  if (name == "__metadata__") fail("safetensors: '__metadata__' cannot name a tensor");
  for (const Item& it : items_)
    if (it.name == name) fail("safetensors: tensor '", name, "' added twice");
  items_.push_back({name, dt, shape, std::move(produce)});
}

void SafeTensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

void SafeTensorsWriter::write_atomic(const std::string& path) const {
  json header = json::object();
  uint64_t offset = 0;
  for (auto& it : items_) {
    uint64_t bytes = uint64_t(it.shape.numel()) * dtype_size(it.dtype);
    std::vector<int64_t> shape(it.shape.dims.begin(), it.shape.dims.begin() + it.shape.ndim);
    header[it.name] = {{"dtype", safetensors_dtype(it.dtype)},
                       {"shape", shape},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h += ' ';  // keep the data 8-byte aligned

  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write ", tmp, ": ", std::strerror(errno));
  // Any failure (a write, a `produce` that throws) closes and removes the temporary file.
  auto abandon = [&](const auto&... why) {
    std::fclose(f);
    std::remove(tmp.c_str());
    fail(why...);
  };
  auto put = [&](const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f) != n)
      abandon("writing ", tmp, " failed (disk full?): ", std::strerror(errno));
  };
  unsigned char len_bytes[8];  // little-endian on any host
  for (int i = 0; i < 8; i++) len_bytes[i] = (uint64_t(h.size()) >> (8 * i)) & 0xff;
  put(len_bytes, 8);
  put(h.data(), h.size());
  std::vector<char> buf;
  for (auto& it : items_) {
    size_t bytes = size_t(it.shape.numel()) * dtype_size(it.dtype);
    buf.resize(bytes);
    try {
      it.produce(buf.data());
    } catch (...) {
      std::fclose(f);
      std::remove(tmp.c_str());
      throw;
    }
    put(buf.data(), bytes);
  }
  if (std::fflush(f) != 0 || fsync(fileno(f)) != 0)
    abandon("flushing ", tmp, " failed: ", std::strerror(errno));
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    fail("closing ", tmp, " failed: ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail("cannot rename ", tmp, " to ", path, ": ", std::strerror(err));
  }
  // The rename itself reaches the disk with the directory (best effort: some file systems
  // cannot sync a directory).
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

namespace {

// The spec's limit on the header: a reader need not parse more JSON than this.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// dtypes of the safetensors spec that mousse does not read (so its message can tell a valid
// file mousse cannot use from a corrupt one).
bool is_other_spec_dtype(const std::string& s) {
  static const char* const kOther[] = {"BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                       "I16",  "U16", "F16", "U32",     "I64",     "U64",
                                       "F4",   "F6_E2M3", "F6_E3M2", "C64"};
  for (const char* o : kOther)
    if (s == o) return true;
  return false;
}

// Parses the header JSON, rejecting what nlohmann would accept but the spec does not: duplicate
// keys (nlohmann keeps the last one silently; another reader may keep the first). Nesting is
// bounded as in the reference reader (serde_json: 127 levels), so a header of a million '['
// costs nothing.
json parse_header(const std::string& path, const std::string& text) {
  std::vector<std::set<std::string>> keys;  // the keys seen in each open object
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth + 1 > 127)  // `depth` containers enclose this one
          fail(path, ": corrupt safetensors header (nested more than 127 levels deep)");
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end: keys.pop_back(); break;
      case json::parse_event_t::key:
        if (!keys.back().insert(parsed.get<std::string>()).second)
          fail(path, ": corrupt safetensors header (duplicate key \"", parsed.get<std::string>(),
               "\")");
        break;
      default: break;
    }
    return true;
  };
  // nlohmann stops at a NUL byte as at the end of the text; JSON text never holds one.
  if (text.find('\0') != std::string::npos)
    fail(path, ": corrupt safetensors header (a NUL byte at ", text.find('\0'), ")");
  try {
    return json::parse(text, callback);
  } catch (const json::exception& e) {
    fail(path, ": corrupt safetensors header (", json_error_text(e), ")");
  }
}

// A JSON non-negative integer literal (shape entries, offsets) as uint64; false for anything
// else (2.0, -1, -0, "3", 1e3), as the reference reader's usize.
bool get_size(const json& v, uint64_t& out) {
  if (!v.is_number_unsigned()) return false;
  out = v.get<uint64_t>();
  return true;
}

}  // namespace

SafeTensorsFile::SafeTensorsFile(const std::string& path) : path_(path) {
  // A FIFO or a device would block or never end: only regular files are read.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    fail("cannot open ", path, ": ", ec ? ec.message() : "no such file");
  if (!std::filesystem::is_regular_file(status))
    fail(path, ": not a regular file (a safetensors file is read from disk)");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("cannot open ", path, ": ", std::strerror(errno));
  const std::streamoff end = in.tellg();
  if (end < 0) fail("cannot read ", path, ": ", std::strerror(errno));
  const uint64_t file_size = uint64_t(end);
  in.seekg(0);
  unsigned char len_bytes[8];
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(len_bytes), 8))
    fail(path, ": not a safetensors file (shorter than its 8-byte header length)");
  uint64_t hlen = 0;  // little-endian on any host
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | len_bytes[i];
  if (hlen > file_size - 8)
    fail(path, ": corrupt safetensors header length ", hlen, " for a file of ", file_size,
         " bytes (truncated file, or not a safetensors file?)");
  if (hlen > kMaxHeaderBytes)
    fail(path, ": corrupt safetensors header length ", hlen, " (the format allows at most ",
         kMaxHeaderBytes, " bytes)");
  std::string h(hlen, '\0');
  if (!in.read(h.data(), std::streamsize(hlen))) fail(path, ": short read of the header");
  // The spec: the header starts with '{' and may be padded at its end with whitespace, so a
  // header length off by a few bytes is an error here or in the tiling check below.
  if (h.empty() || h[0] != '{')
    fail(path, ": corrupt safetensors header (it must start with '{'; wrong header length or ",
         "not a safetensors file?)");
  const json header = parse_header(path, h);
  if (!header.is_object()) fail(path, ": corrupt safetensors header (not a JSON object)");
  data_start_ = 8 + hlen;
  const uint64_t data_size = file_size - data_start_;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {  // a map of string to string (null: none)
      if (v.is_null()) continue;
      if (!v.is_object())
        fail(path, ": corrupt safetensors header (__metadata__ must map strings to strings)");
      for (auto& [k, mv] : v.items()) {
        if (!mv.is_string())
          fail(path, ": corrupt safetensors header (__metadata__ value of \"", k,
               "\" is not a string: ", mv.dump(), ")");
        metadata_[k] = mv.get<std::string>();
      }
      continue;
    }
    const std::string& tensor_name = name;  // (a lambda may not capture a structured binding)
    auto bad = [&](const std::string& why) {
      fail(path, ": corrupt safetensors header: tensor '", tensor_name, "' ", why);
    };
    if (!v.is_object()) bad("is not an object {dtype, shape, data_offsets}");
    if (!v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      bad("lacks one of dtype, shape, data_offsets");
    Entry e;
    e.name = name;
    const json& dt = v.at("dtype");
    if (!dt.is_string()) bad("has a dtype that is not a string: " + dt.dump());
    if (!dtype_from_safetensors(dt.get<std::string>(), e.dtype)) {
      if (is_other_spec_dtype(dt.get<std::string>()))
        fail(path, ": tensor '", name, "' has dtype ", dt.get<std::string>(),
             ", which mousse does not read (it reads F32, F64, BF16 and I32)");
      bad("has an unknown dtype " + dt.dump());
    }
    const json& shape = v.at("shape");
    if (!shape.is_array()) bad("has a shape that is not an array: " + shape.dump());
    // Element count and bytes with overflow checks: a hostile shape must not wrap around to a
    // size that matches its offsets.
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : shape) {
      uint64_t n = 0;
      if (!get_size(d, n))
        bad("has a shape entry that is not a non-negative integer: " + shape.dump());
      if (n > uint64_t(std::numeric_limits<int64_t>::max()))
        bad("has a dimension too large: " + shape.dump());
      overflow = overflow || __builtin_mul_overflow(numel, n, &numel);
      if (e.shape.ndim < 4) e.shape.dims[size_t(e.shape.ndim)] = int64_t(n);
      e.shape.ndim++;
    }
    if (e.shape.ndim > 4)
      fail(path, ": tensor '", name, "' has ", e.shape.ndim,
           " dimensions; mousse reads tensors of at most 4");
    uint64_t bytes = 0;
    if (overflow || __builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &bytes))
      bad("has a shape whose size overflows: " + shape.dump());
    const json& off = v.at("data_offsets");
    if (!off.is_array() || off.size() != 2 || !get_size(off[0], e.begin) ||
        !get_size(off[1], e.end))
      bad("has data_offsets that are not two non-negative integers [begin, end]: " + off.dump());
    if (e.end < e.begin || e.end - e.begin != bytes)
      bad("has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
          ") that do not hold its " + std::to_string(bytes) + " bytes (" + dt.get<std::string>() +
          " " + e.shape.str() + ")");
    entries_.push_back(e);
  }
  // The tensors tile the data buffer: sorted by offset, each starts where the previous ended
  // and the last ends at the end of the file. No holes, no overlaps, no trailing bytes (a file
  // that is two things at once, or a header length that is off, fails here).
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t at = 0;
  for (const Entry* e : by_offset) {
    if (e->begin != at)
      fail(path, ": corrupt safetensors file: tensor '", e->name, "' starts at byte ", e->begin,
           " of the data, expected ", at, e->begin < at ? " (it overlaps the tensor before it)"
                                                        : " (a hole in the data)");
    at = e->end;
  }
  if (at != data_size)
    fail(path, ": corrupt safetensors file: its tensors end at byte ", at, " of the data but the ",
         "file holds ", data_size, " data bytes after its header",
         at > data_size ? " (truncated file?)" : " (trailing bytes, or a wrong header length)");
}

json SafeTensorsFile::metadata_json(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) return json();
  if (it->second.find('\0') != std::string::npos)  // (nlohmann would stop there)
    fail(path_, ": corrupt '", key, "' metadata, not valid JSON (a NUL byte)");
  try {
    return json::parse(it->second);
  } catch (const json::exception& e) {
    fail(path_, ": corrupt '", key, "' metadata, not valid JSON (", json_error_text(e), ")");
  }
}

const SafeTensorsFile::Entry* SafeTensorsFile::find(const std::string& name) const {
  for (auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

void SafeTensorsFile::read(const std::string& name, DType dt, Shape expect, void* dst) const {
  const Entry* e = find(name);
  if (!e) fail(path_, ": no tensor named '", name, "'");
  if (e->shape != expect)
    fail(path_, ": tensor '", name, "' has shape ", e->shape.str(), ", expected ", expect.str(),
         " (a checkpoint of a different model?)");
  read_elements(name, dt, 0, e->shape.numel(), dst);
}

void SafeTensorsFile::read_elements(const std::string& name, DType dt, int64_t first,
                                    int64_t count, void* dst) const {
  const Entry* e = find(name);
  if (!e) fail(path_, ": no tensor named '", name, "'");
  if (first < 0 || count < 0 || first + count > e->shape.numel())
    fail(path_, ": tensor '", name, "' has ", e->shape.numel(), " elements, cannot read [",
         first, ", ", first + count, ")");
  const size_t n = size_t(count), esz = dtype_size(e->dtype);
  std::ifstream in(path_, std::ios::binary);
  in.seekg(std::streamoff(data_start_ + e->begin + uint64_t(first) * esz));
  if (e->dtype == dt) {
    if (!in.read(static_cast<char*>(dst), std::streamsize(n * esz)))
      fail(path_, ": short read of tensor '", name, "'");
    return;
  }
  auto is_float = [](DType d) { return d == DType::f32 || d == DType::f64 || d == DType::bf16; };
  if (!is_float(e->dtype) || !is_float(dt))
    fail(path_, ": tensor '", name, "' is ", safetensors_dtype(e->dtype), ", cannot convert to ",
         safetensors_dtype(dt));
  std::vector<char> raw(n * esz);
  if (!in.read(raw.data(), std::streamsize(raw.size())))
    fail(path_, ": short read of tensor '", name, "'");
  for (size_t i = 0; i < n; i++) {
    double v = 0;
    if (e->dtype == DType::f32) v = reinterpret_cast<float*>(raw.data())[i];
    else if (e->dtype == DType::f64) v = reinterpret_cast<double*>(raw.data())[i];
    else v = bf16_to_float(reinterpret_cast<uint16_t*>(raw.data())[i]);
    if (dt == DType::f32) static_cast<float*>(dst)[i] = float(v);
    else if (dt == DType::f64) static_cast<double*>(dst)[i] = v;
    else static_cast<uint16_t*>(dst)[i] = float_to_bf16(float(v));
  }
}

}  // namespace mousse
