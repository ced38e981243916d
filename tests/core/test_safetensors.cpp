// safetensors files (src/core/safetensors.h) by the format's rules: what the writer produces
// round-trips bit for bit, and the reader rejects, with an error naming the file, every class of
// malformed file: wrong header lengths, headers that are not one JSON object, duplicate keys,
// non-integer or negative shapes and offsets, sizes that disagree with shape × dtype, offsets
// that leave holes, overlap or stop short of the end, bad __metadata__, non-regular files.
// tests/core/safetensors_crosscheck.py checks the same against an independent reader and the
// `safetensors` Python package.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "test_errors.h"

using namespace mousse;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    dir = fs::temp_directory_path() /
          ("mousse_st_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A file of `header` (its true length unless hlen is given) followed by `data`.
void write_raw(const std::string& path, const std::string& header, const std::string& data,
               int64_t hlen = -1) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << le64(hlen < 0 ? header.size() : uint64_t(hlen)) << header << data;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The error the reader gives for `path`, or "" when it accepts the file.
std::string reader_error(const std::string& path) {
  return mousse_test::error_of([&] { SafeTensorsFile f(path); });
}

struct Written {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<char> bytes;
};

// Random tensors of every dtype mousse writes, scalars and empty tensors included.
std::vector<Written> random_tensors(std::mt19937_64& rng, int count) {
  const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::i32};
  std::vector<Written> out;
  for (int i = 0; i < count; i++) {
    Written w;
    w.name = "t" + std::to_string(i) + (i % 3 == 0 ? ".weight" : "");
    w.dtype = dtypes[rng() % 4];
    const int ndim = int(rng() % 5);  // 0 (a scalar) to 4
    for (int d = 0; d < ndim; d++) w.shape.dims[size_t(d)] = int64_t(rng() % 6);  // 0: empty
    w.shape.ndim = ndim;
    w.bytes.resize(size_t(w.shape.numel()) * dtype_size(w.dtype));
    for (char& c : w.bytes) c = char(rng() & 0xff);
    out.push_back(std::move(w));
  }
  return out;
}

void write_tensors(const std::string& path, const std::vector<Written>& ts,
                   const std::map<std::string, std::string>& meta) {
  SafeTensorsWriter w;
  for (const Written& t : ts)
    w.add(t.name, t.dtype, t.shape,
          [&t](void* dst) { std::memcpy(dst, t.bytes.data(), t.bytes.size()); });
  for (auto& [k, v] : meta) w.set_metadata(k, v);
  w.write_atomic(path);
}

}  // namespace

TEST_CASE("safetensors: random files round-trip bit for bit and tile their data") {
  std::mt19937_64 rng(20240611);
  TempDir tmp;
  for (int trial = 0; trial < 40; trial++) {
    const auto ts = random_tensors(rng, 1 + int(rng() % 7));
    std::map<std::string, std::string> meta;
    for (int k = 0; k < int(rng() % 3); k++)
      meta["key" + std::to_string(k)] = "value \"" + std::to_string(rng()) + "\" ünïcode";
    const std::string path = tmp.file("r" + std::to_string(trial) + ".safetensors");
    write_tensors(path, ts, meta);
    SafeTensorsFile f(path);
    CHECK(f.metadata() == meta);
    REQUIRE(f.entries().size() == ts.size());
    uint64_t total = 0;
    for (const Written& t : ts) {
      const auto* e = f.find(t.name);
      REQUIRE(e);
      CHECK(e->dtype == t.dtype);
      CHECK(e->shape == t.shape);
      CHECK(e->end - e->begin == t.bytes.size());
      total += t.bytes.size();
      std::vector<char> back(t.bytes.size());
      f.read(t.name, t.dtype, t.shape, back.data());
      CHECK(back == t.bytes);
    }
    // The header is padded so the data starts 8-byte aligned, and the data is exactly the
    // tensors' bytes.
    const std::string raw = read_all(path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | uint8_t(raw[size_t(i)]);
    CHECK((8 + hlen) % 8 == 0);
    CHECK(raw.size() == 8 + hlen + total);
    CHECK(raw[8] == '{');
  }
}

TEST_CASE("safetensors: the writer refuses duplicate and reserved names, cleans up on failure") {
  TempDir tmp;
  auto noop = [](void*) {};
  SafeTensorsWriter w;
  w.add("a", DType::f32, Shape{2}, noop);
  CHECK_THROWS_WITH(w.add("a", DType::f32, Shape{3}, noop), Catch::Contains("'a' added twice"));
  CHECK_THROWS_WITH(w.add("__metadata__", DType::f32, Shape{1}, noop),
                    Catch::Contains("__metadata__"));
  // A producer that fails leaves neither the file nor its temporary behind.
  SafeTensorsWriter bad;
  bad.add("x", DType::f32, Shape{4}, [](void*) { throw Error("device lost"); });
  const std::string path = tmp.file("bad.safetensors");
  CHECK_THROWS_WITH(bad.write_atomic(path), Catch::Contains("device lost"));
  CHECK(fs::is_empty(tmp.dir));
}

TEST_CASE("safetensors: a header length off by any amount is an error naming the file") {
  std::mt19937_64 rng(7);
  TempDir tmp;
  const std::string path = tmp.file("len.safetensors");
  for (int trial = 0; trial < 12; trial++) {
    const auto ts = random_tensors(rng, 1 + int(rng() % 5));
    write_tensors(path, ts, {{"format", "pt"}});
    const std::string raw = read_all(path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | uint8_t(raw[size_t(i)]);
    REQUIRE(reader_error(path).empty());
    for (int64_t delta = -16; delta <= 16; delta++) {
      if (delta == 0 || int64_t(hlen) + delta < 0) continue;
      // The header's padding is spaces, and the tensors may all be empty: a length that only
      // moves into or out of the padding still breaks the tiling unless there is no data.
      std::ofstream(path, std::ios::binary | std::ios::trunc)
          << le64(uint64_t(int64_t(hlen) + delta)) << raw.substr(8);
      const std::string err = reader_error(path);
      INFO("header length " << hlen << " + " << delta);
      bool all_empty = true;
      for (const Written& t : ts) all_empty = all_empty && t.bytes.empty();
      if (all_empty && delta < 0) continue;  // "{...}  " shortened within its padding is valid
      CHECK_THAT(err, Catch::Contains("len.safetensors"));
    }
    // Lengths far beyond the file, and beyond the format's 100 MB bound.
    for (uint64_t bogus : {uint64_t(raw.size()), uint64_t(1) << 40, ~uint64_t(0)}) {
      std::ofstream(path, std::ios::binary | std::ios::trunc) << le64(bogus) << raw.substr(8);
      CHECK_THAT(reader_error(path), Catch::Contains("header length"));
    }
  }
  // 100,000,001 bytes of header inside a (sparse) file large enough to hold them.
  write_raw(path, "{}", "", 100'000'001);
  fs::resize_file(path, 8 + 100'000'001 + 8);
  CHECK_THAT(reader_error(path), Catch::Contains("at most 100000000"));
}

TEST_CASE("safetensors: offsets must tile the data exactly: no holes, overlaps, trailing bytes") {
  TempDir tmp;
  const std::string path = tmp.file("tile.safetensors");
  auto header = [](uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1) {
    return R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[)" + std::to_string(a0) + "," +
           std::to_string(a1) + R"(]},"b":{"dtype":"F32","shape":[2],"data_offsets":[)" +
           std::to_string(b0) + "," + std::to_string(b1) + "]}}";
  };
  const std::string data(24, '\x11');
  write_raw(path, header(0, 16, 16, 24), data);
  CHECK(reader_error(path).empty());
  write_raw(path, header(8, 24, 0, 8), data);  // any order in the header
  CHECK(reader_error(path).empty());
  // Overlaps: b inside a, b straddling a's end, both at the same place.
  write_raw(path, header(0, 16, 8, 16), std::string(16, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("overlaps") || Catch::Contains("hold its"));
  write_raw(path, header(0, 16, 12, 20), std::string(20, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("overlaps"));
  write_raw(path, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", std::string(8, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("overlaps"));
  // Holes: at the start, between, and after the last tensor (trailing bytes).
  write_raw(path, header(4, 20, 20, 28), std::string(28, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("hole"));
  write_raw(path, header(0, 16, 20, 28), std::string(28, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("hole"));
  write_raw(path, header(0, 16, 16, 24), std::string(25, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("trailing bytes"));
  // Beyond the end of the file (a truncated file), and end before begin.
  write_raw(path, header(0, 16, 16, 24), std::string(20, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("truncated"));
  write_raw(path, header(16, 0, 16, 24), data);
  CHECK_THAT(reader_error(path), Catch::Contains("data_offsets"));
  // A size that is not product(shape) × dtype size, for each dtype.
  for (const char* dt : {"F32", "F64", "BF16", "I32"})
    for (uint64_t bytes : {uint64_t(0), uint64_t(3), uint64_t(5), uint64_t(7), uint64_t(9)}) {
      write_raw(path, std::string(R"({"a":{"dtype":")") + dt + R"(","shape":[1],"data_offsets":[0,)" +
                          std::to_string(bytes) + "]}}",
                std::string(bytes, 'x'));
      CHECK_THAT(reader_error(path), Catch::Contains("tile.safetensors") && Catch::Contains("'a'"));
    }
  // Empty tensors take no bytes, at any offset between tensors (not inside one).
  write_raw(path, R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[16,16]},)"
                  R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(16, 'x'));
  CHECK(reader_error(path).empty());
  write_raw(path, R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},)"
                  R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(16, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("'e'") && Catch::Contains("overlaps"));
  write_raw(path, "{}", "");  // no tensors, no data
  CHECK(reader_error(path).empty());
}

TEST_CASE("safetensors: shapes, offsets and dtypes must be what the format says") {
  TempDir tmp;
  const std::string path = tmp.file("fields.safetensors");
  auto with_shape = [&](const std::string& shape, const std::string& offsets,
                        const std::string& dtype = "\"F32\"") {
    write_raw(path, R"({"a":{"dtype":)" + dtype + R"(,"shape":)" + shape +
                        R"(,"data_offsets":)" + offsets + "}}",
              std::string(8, 'x'));
    return reader_error(path);
  };
  CHECK(with_shape("[2]", "[0,8]").empty());
  CHECK(with_shape("[1,2,1,1]", "[0,8]").empty());
  // Shape entries that are not non-negative integer literals.
  for (const char* s : {"[2.0]", "[1.5]", "[-2]", "[-0,2]", "[\"2\"]", "[null]", "[true]", "[2e0]",
                        "[[2]]", "{\"0\":2}", "\"[2]\"", "2", "null", "[18446744073709551616]"})
    CHECK_THAT(with_shape(s, "[0,8]"), Catch::Contains("fields.safetensors") &&
                                           Catch::Contains("shape"));
  // Sizes that overflow 64 bits must not wrap to one that matches the offsets.
  CHECK_THAT(with_shape("[4294967296,4294967296,2]", "[0,8]"), Catch::Contains("overflow"));
  CHECK_THAT(with_shape("[9223372036854775808,0]", "[0,0]"), Catch::Contains("too large"));
  CHECK_THAT(with_shape("[1,1,1,1,2]", "[0,8]"), Catch::Contains("at most 4"));
  // Offsets that are not two non-negative integers.
  for (const char* o : {"[0]", "[0,8,8]", "[0.0,8]", "[0,8.0]", "[-0,8]", "[\"0\",8]", "null",
                        "{\"0\":0}", "[0,18446744073709551616]"})
    CHECK_THAT(with_shape("[2]", o), Catch::Contains("data_offsets"));
  // Unknown dtypes, and spec dtypes mousse does not read.
  for (const char* d : {"\"f32\"", "\"F31\"", "\"\"", "4", "null", "[\"F32\"]"})
    CHECK_THAT(with_shape("[2]", "[0,8]", d), Catch::Contains("dtype"));
  CHECK_THAT(with_shape("[4]", "[0,8]", "\"F16\""), Catch::Contains("does not read"));
  // Missing fields and non-object entries.
  write_raw(path, R"({"a":{"dtype":"F32","shape":[2]}})", std::string(8, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("lacks"));
  write_raw(path, R"({"a":[0,8]})", std::string(8, 'x'));
  CHECK_THAT(reader_error(path), Catch::Contains("not an object"));
}

TEST_CASE("safetensors: the header is one JSON object: no duplicates, bad text or bad metadata") {
  TempDir tmp;
  const std::string path = tmp.file("hdr.safetensors");
  const std::string a = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  auto err = [&](const std::string& header, const std::string& data = std::string(4, 'x')) {
    write_raw(path, header, data);
    return reader_error(path);
  };
  CHECK(err("{" + a + "}").empty());
  CHECK(err("{" + a + "}    \n\t ").empty());  // trailing whitespace is the format's padding
  CHECK(err("{" + a + R"(,"__metadata__":{"k":"v","é":""}})").empty());
  CHECK(err("{" + a + R"(,"__metadata__":null})").empty());
  // Duplicate keys at every level.
  CHECK_THAT(err("{" + a + "," + a + "}"), Catch::Contains("duplicate key \"a\""));
  CHECK_THAT(err(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})"),
             Catch::Contains("duplicate key \"dtype\""));
  CHECK_THAT(err("{" + a + R"(,"__metadata__":{"k":"v","k":"w"}})"),
             Catch::Contains("duplicate key \"k\""));
  // Text that is not exactly one JSON object starting at the first byte.
  for (const std::string& h : {" {" + a + "}", "\xEF\xBB\xBF{" + a + "}", "{" + a + "}\0"s,
                               "{" + a + "}x", "{" + a + "}{}", "[" + a + "]", "{" + a,
                               std::string("\"a\""), std::string(""), "{" + a + ",}",
                               std::string("{\"a\xff\":1}")})
    CHECK_THAT(err(h), Catch::Contains("hdr.safetensors") && Catch::Contains("header"));
  // Invalid UTF-8 and lone surrogates inside strings.
  CHECK_THAT(err("{" + a + ",\"__metadata__\":{\"k\":\"\xC3\x28\"}}"), Catch::Contains("header"));
  CHECK_THAT(err("{" + a + R"(,"__metadata__":{"k":"\ud800"}})"), Catch::Contains("header"));
  // __metadata__ must map strings to strings.
  for (const char* m : {R"({"k":1})", R"({"k":null})", R"({"k":["v"]})", R"(["k","v"])", R"("kv")",
                        R"({"k":{"x":"y"}})"})
    CHECK_THAT(err("{" + a + ",\"__metadata__\":" + m + "}"), Catch::Contains("__metadata__"));
  // Deep nesting is refused early, not parsed into a huge tree.
  CHECK_THAT(err("{" + a + ",\"__metadata__\":" + std::string(100000, '[') + "}"),
             Catch::Contains("header"));
}

TEST_CASE("safetensors: only regular files are read, and a missing file names itself") {
  TempDir tmp;
  CHECK_THAT(reader_error(tmp.file("none.safetensors")),
             Catch::Contains("cannot open") && Catch::Contains("none.safetensors"));
  CHECK_THAT(reader_error(tmp.dir.string()), Catch::Contains("not a regular file"));
  const std::string fifo = tmp.file("pipe.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THAT(reader_error(fifo), Catch::Contains("not a regular file"));  // (no hang)
  std::ofstream(tmp.file("short.safetensors"), std::ios::binary) << "1234567";
  CHECK_THAT(reader_error(tmp.file("short.safetensors")), Catch::Contains("not a safetensors"));
}

TEST_CASE("safetensors: random corruption of valid files is accepted only when still valid") {
  // Flip, insert, delete and overwrite bytes of valid files: the reader either accepts the file
  // (and then its entries tile the data exactly) or throws mousse::Error naming the file; it
  // never throws anything else or reads out of bounds (run under a sanitizer by the fuzz stage).
  std::mt19937_64 rng(11);
  TempDir tmp;
  const std::string src = tmp.file("src.safetensors"), path = tmp.file("mut.safetensors");
  int accepted = 0, rejected = 0;
  for (int base = 0; base < 6; base++) {
    write_tensors(src, random_tensors(rng, 1 + int(rng() % 4)), {{"k", "v"}});
    const std::string raw = read_all(src);
    for (int trial = 0; trial < 300; trial++) {
      std::string m = raw;
      const int kind = int(rng() % 5);
      const size_t at = size_t(rng() % m.size());
      if (kind == 0) m[at] = char(m[at] ^ (1 << (rng() % 8)));
      else if (kind == 1) m.insert(at, 1, char("0123456789,-.[]{}\" e"[rng() % 20]));
      else if (kind == 2) m.erase(at, 1 + rng() % 4);
      else if (kind == 3) m[at] = char("0123456789,-.[]{}\" e"[rng() % 20]);
      else m.resize(size_t(rng() % m.size()));
      std::ofstream(path, std::ios::binary | std::ios::trunc) << m;
      try {
        SafeTensorsFile f(path);
        accepted++;
        uint64_t hlen = 0, sum = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | uint8_t(m[size_t(i)]);
        for (const auto& e : f.entries()) {
          sum += e.end - e.begin;
          std::vector<char> buf(e.end - e.begin);
          f.read(e.name, e.dtype, e.shape, buf.data());
        }
        CHECK(8 + hlen + sum == m.size());
      } catch (const Error& e) {
        rejected++;
        CHECK_THAT(std::string(e.what()), Catch::Contains("mut.safetensors"));
      }
    }
  }
  CHECK(rejected > 1000);  // most mutations break the file; those that do not are still valid
  INFO("accepted " << accepted);
}

TEST_CASE("safetensors: metadata_json parses a metadata value, errors name the file and key") {
  TempDir tmp;
  const std::string path = tmp.file("meta.safetensors");
  write_raw(path, R"({"__metadata__":{"mousse":"{\"step\": 3}","bad":"{step: 3"}})", "");
  SafeTensorsFile f(path);
  CHECK(f.metadata_json("mousse").at("step") == 3);
  CHECK(f.metadata_json("absent").is_null());
  CHECK_THROWS_WITH(f.metadata_json("bad"), Catch::Contains("meta.safetensors") &&
                                                Catch::Contains("'bad' metadata"));
}
