#include "core/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

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
  auto put = [&](const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f) != n) {
      std::fclose(f);
      std::remove(tmp.c_str());
      fail("writing ", tmp, " failed (disk full?): ", std::strerror(errno));
    }
  };
  uint64_t hlen = h.size();
  put(&hlen, 8);
  put(h.data(), h.size());
  std::vector<char> buf;
  for (auto& it : items_) {
    size_t bytes = size_t(it.shape.numel()) * dtype_size(it.dtype);
    buf.resize(bytes);
    it.produce(buf.data());
    put(buf.data(), bytes);
  }
  if (std::fflush(f) != 0 || fsync(fileno(f)) != 0) {
    std::fclose(f);
    std::remove(tmp.c_str());
    fail("flushing ", tmp, " failed: ", std::strerror(errno));
  }
  std::fclose(f);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno));
  }
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("cannot open ", path, ": ", std::strerror(errno));
  const uint64_t file_size = uint64_t(in.tellg());
  in.seekg(0);
  uint64_t hlen = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&hlen), 8))
    fail(path, ": not a safetensors file (shorter than its 8-byte header length)");
  if (hlen > file_size - 8 || hlen > (uint64_t(1) << 30))
    fail(path, ": corrupt safetensors header length ", hlen, " for a file of ", file_size,
         " bytes");
  std::string h(hlen, '\0');
  in.read(h.data(), std::streamsize(hlen));
  json header;
  try {
    header = json::parse(h);
  } catch (const std::exception& e) {
    fail(path, ": corrupt safetensors header (", e.what(), ")");
  }
  if (!header.is_object()) fail(path, ": corrupt safetensors header (not a JSON object)");
  data_start_ = 8 + hlen;
  const uint64_t data_size = file_size - data_start_;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      for (auto& [k, mv] : v.items())
        if (mv.is_string()) metadata_[k] = mv.get<std::string>();
      continue;
    }
    Entry e;
    e.name = name;
    try {
      std::string dt = v.at("dtype").get<std::string>();
      if (!dtype_from_safetensors(dt, e.dtype))
        fail(path, ": tensor '", name, "' has dtype ", dt, "; expected F32, F64, BF16 or I32");
      auto shape = v.at("shape").get<std::vector<int64_t>>();
      if (shape.size() > 4) fail(path, ": tensor '", name, "' has more than 4 dimensions");
      for (auto d : shape) {
        if (d < 0) fail(path, ": tensor '", name, "' has a negative dimension");
        e.shape.dims[e.shape.ndim++] = d;
      }
      auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2) fail(path, ": tensor '", name, "': data_offsets needs 2 values");
      e.begin = off[0];
      e.end = off[1];
    } catch (const nlohmann::json::exception& ex) {
      fail(path, ": tensor '", name, "' has a malformed header entry (", ex.what(), ")");
    }
    if (e.end < e.begin || e.end > data_size ||
        e.end - e.begin != uint64_t(e.shape.numel()) * dtype_size(e.dtype))
      fail(path, ": tensor '", name, "' has offsets [", e.begin, ", ", e.end,
           ") inconsistent with its shape or the file size (truncated file?)");
    entries_.push_back(e);
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
