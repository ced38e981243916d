// The safetensors reader and writer as a command, for safetensors_crosscheck.py:
//   safetensors_probe read FILE        prints what the reader found as JSON, exit 0; or the
//                                      reader's error on stderr, exit 1 (any other exception: 3)
//   safetensors_probe write FILE SEED  writes random tensors with the writer, prints them as JSON
// The JSON: {"tensors": [{"name", "dtype", "shape", "begin", "end", "hex"}], "metadata": {...}}
// ("begin"/"end" only from read; "hex" is the tensor's bytes).
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"

using namespace mousse;
using json = nlohmann::json;

namespace {

std::string hex(const std::vector<unsigned char>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned char b : bytes) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

json shape_json(const Shape& s) {
  json a = json::array();
  for (int i = 0; i < s.ndim; i++) a.push_back(s.dims[size_t(i)]);
  return a;
}

int read_file(const std::string& path) {
  SafeTensorsFile f(path);
  json out = {{"tensors", json::array()}, {"metadata", f.metadata()}};
  for (const auto& e : f.entries()) {
    std::vector<unsigned char> bytes(e.end - e.begin);
    f.read(e.name, e.dtype, e.shape, bytes.data());
    out["tensors"].push_back({{"name", e.name},
                              {"dtype", safetensors_dtype(e.dtype)},
                              {"shape", shape_json(e.shape)},
                              {"begin", e.begin},
                              {"end", e.end},
                              {"hex", hex(bytes)}});
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

int write_file(const std::string& path, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::i32};
  struct T { std::string name; DType dt; Shape shape; std::vector<unsigned char> bytes; };
  std::vector<T> ts(1 + rng() % 8);
  SafeTensorsWriter w;
  json out = {{"tensors", json::array()}, {"metadata", json::object()}};
  for (size_t i = 0; i < ts.size(); i++) {
    T& t = ts[i];
    // Names as checkpoints have them, plus characters JSON must escape.
    t.name = i % 4 == 3 ? "blocks." + std::to_string(i) + ".attn \"q\"\\ é\t" : "t" + std::to_string(i);
    t.dt = dtypes[rng() % 4];
    t.shape.ndim = int(rng() % 5);
    for (int d = 0; d < t.shape.ndim; d++) t.shape.dims[size_t(d)] = int64_t(rng() % 5);
    t.bytes.resize(size_t(t.shape.numel()) * dtype_size(t.dt));
    for (auto& b : t.bytes) b = (unsigned char)(rng() & 0xff);
    w.add(t.name, t.dt, t.shape,
          [&t](void* dst) { std::memcpy(dst, t.bytes.data(), t.bytes.size()); });
    out["tensors"].push_back({{"name", t.name},
                              {"dtype", safetensors_dtype(t.dt)},
                              {"shape", shape_json(t.shape)},
                              {"hex", hex(t.bytes)}});
  }
  for (int k = 0; k < int(rng() % 4); k++) {
    const std::string key = "key" + std::to_string(k), value = "{\"v\": " + std::to_string(rng()) + "} ü";
    w.set_metadata(key, value);
    out["metadata"][key] = value;
  }
  w.write_atomic(path);
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "read" && argc == 3) return read_file(argv[2]);
    if (mode == "write" && argc == 4) return write_file(argv[2], std::stoull(argv[3]));
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    return 3;
  }
  std::fprintf(stderr, "usage: safetensors_probe read FILE | write FILE SEED\n");
  return 2;
}
