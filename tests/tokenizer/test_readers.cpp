// Unit tests of mousse-tokenize's readers and output directory (no Python needed): bounded batches
// and documents, precise JSON errors, the parquet fuzz corpus (valid files read, hostile ones
// refused with InputError), shard names and the output lock.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "output_dir.h"
#include "test_files.h"
#include "readers/input_error.h"
#include "readers/jsonl.h"
#include "readers/reader.h"
#include "utf8.h"

using namespace mousse::tok;
namespace fs = std::filesystem;

namespace {
// In one temporary folder per process, removed when the process ends.
std::string temp_file(const std::string& name, const std::string& bytes) {
  static mousse_test::TempDir dir;
  std::string p = dir.file(name);
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

struct ReadAll {
  std::vector<std::string> docs;
  std::vector<uint64_t> where;
  size_t batches = 0, largest_batch = 0;
};
ReadAll read_all(DocReader& r, size_t max_bytes = 1 << 20) {
  ReadAll out;
  DocBatch b;
  while (r.read(b, max_bytes)) {
    ++out.batches;
    out.largest_batch = std::max(out.largest_batch, b.items.size());
    out.docs.insert(out.docs.end(), b.items.begin(), b.items.end());
    out.where.insert(out.where.end(), b.where.begin(), b.where.end());
    b.clear();
  }
  return out;
}

// The error message of f(), or "" when it does not throw InputError.
template <class F>
std::string input_error(F f) {
  return mousse_test::message_of<InputError>(f);
}

std::string parse(const std::string& line, std::string* text = nullptr) {
  std::string out;
  std::string err = input_error([&] { parse_json_document(line, "text", "f.jsonl", 7, out); });
  if (text) *text = out;
  return err;
}
}  // namespace

TEST_CASE("a line or a document longer than the limit is an error, not unbounded memory", "[tokenizer][readers]") {
  ReaderOptions opt;
  opt.max_document_bytes = 1000;
  std::string ok = "{\"text\": \"" + std::string(900, 'a') + "\"}\n";
  std::string p = temp_file("long.jsonl", ok + ok + "{\"text\": \"" + std::string(5000, 'b'));
  auto r = open_jsonl(p, opt);
  std::string err = input_error([&] { read_all(*r); });
  CHECK(err.find(p + ": line 3: longer than 1000 bytes without a newline") != std::string::npos);

  p = temp_file("long_line.jsonl", ok + "{\"text\": \"" + std::string(1500, 'c') + "\"}\n" + ok);
  r = open_jsonl(p, opt);
  err = input_error([&] { read_all(*r); });
  CHECK(err.find(p + ": line 2: longer than 1000 bytes") != std::string::npos);

  std::string t = temp_file("long.txt", std::string(1500, 'x'));
  err = input_error([&] { auto tr = open_text(t, opt); read_all(*tr); });
  CHECK(err.find("one document of more than 1000 bytes") != std::string::npos);
  CHECK(err.find("--split-on") != std::string::npos);

  opt.split = true;
  opt.separator = "\n\n";
  t = temp_file("sections.txt", "short\n\n" + std::string(1500, 'y') + "\n\nend");
  err = input_error([&] { auto tr = open_text(t, opt); read_all(*tr); });
  CHECK(err.find(t + ": section 2: longer than 1000 bytes without a separator") != std::string::npos);
}

TEST_CASE("batches stay bounded for a file of empty documents", "[tokenizer][readers]") {
  const size_t n = 3 * kMaxBatchDocs / 2 + 17;
  ReaderOptions opt;
  opt.split = true;
  opt.separator = "\n";
  opt.keep_separator = false;
  auto r = open_text(temp_file("empty_sections.txt", std::string(n, '\n')), opt);
  ReadAll all = read_all(*r);
  CHECK(all.docs.size() == n + 1);  // n separators: n + 1 sections, all empty
  CHECK(all.largest_batch <= kMaxBatchDocs);
  CHECK(all.batches >= 2);

  std::string lines;
  for (size_t i = 0; i < n; ++i) lines += "{\"text\":\"\"}\n";
  auto j = open_jsonl(temp_file("empty_docs.jsonl", lines), ReaderOptions{});
  all = read_all(*j, size_t(1) << 40);
  CHECK(all.docs.size() == n);
  CHECK(all.largest_batch <= kMaxBatchDocs);
  CHECK(all.where.back() == n);
}

TEST_CASE("a UTF-8 byte order mark starts a JSON Lines file harmlessly, nowhere else", "[tokenizer][readers]") {
  std::string body = "{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n";
  auto r = open_jsonl(temp_file("bom.jsonl", "\xEF\xBB\xBF" + body), ReaderOptions{});
  ReadAll all = read_all(*r);
  REQUIRE(all.docs.size() == 2);
  CHECK(all.docs[0] == "{\"text\": \"a\"}");
  CHECK(all.where == std::vector<uint64_t>{1, 3});  // line numbers unchanged by the mark
  std::string err = parse("\xEF\xBB\xBF{\"text\": \"a\"}");
  CHECK(err == "f.jsonl: line 7, column 1: UTF-8 byte order mark (U+FEFF) inside the file; remove it");
  r = open_jsonl(temp_file("utf16.jsonl", std::string("\xFF\xFE{\0", 4)), ReaderOptions{});
  err = input_error([&] { read_all(*r); });
  CHECK(err.find("UTF-16 or UTF-32 byte order mark") != std::string::npos);
}

TEST_CASE("malformed JSON lines name the column and the reason", "[tokenizer][readers]") {
  struct Case { std::string line, want; };
  const std::vector<Case> cases = {
      {std::string("{\"text\": \"a\"}\0", 14), "line 7, column 14: NUL byte (expected the end of the line after the JSON object)"},
      {std::string("{\"text\": \"a\0\"}", 15), "line 7, column 12: NUL byte inside a string (write it as \\u0000)"},
      {"{\"text\": \"a\tb\"}", "line 7, column 12: control character U+0009 inside a string"},
      {"{\"text\": \"abc", "line 7, column 10: unterminated string (the line ends inside it)"},
      {"{\"text\": \"a\\x\"}", "line 7, column 12: invalid escape \\'x' in a string"},
      {"{\"text\": \"\\u00\"}", "line 7, column 11: invalid \\u escape (4 hex digits expected)"},
      {"{\"text\": nul}", "line 7, column 10: invalid literal (expected null)"},
      {"{\"text\": -}", "line 7, column 10: invalid number"},
      {"{\"text\": 1e}", "line 7, column 10: invalid number (digits expected in the exponent)"},
      {"{\"text\": }", "line 7, column 10: expected a value, found '}'"},
      {"{'text': 1}", "line 7, column 2: expected a string key, found '''"},
      {"{\"text\": \"a\"}}", "line 7, column 14: expected the end of the line after the JSON object, found '}'"},
      {"\"text\"", "line 7, column 1: expected a JSON object ('{'), found '\"'"},
      {"{\"text\": \"a\", \"x\": {\"y\" 1}}", "line 7, column 25: expected ':' after the key, found '1'"},
  };
  for (const Case& c : cases) {
    std::string err = parse(c.line);
    INFO(c.line);
    CHECK(err.rfind("f.jsonl: " + c.want, 0) == 0);
  }
  // nesting: 500 levels (the object itself included) are read, 501 are not
  auto nested = [](int levels) {
    return "{\"text\": \"a\", \"x\": " + std::string(size_t(levels - 1), '[') + std::string(size_t(levels - 1), ']') + "}";
  };
  CHECK(parse(nested(500)).empty());
  CHECK(parse(nested(501)) == "f.jsonl: line 7, column 519: nesting deeper than 500 levels");
  CHECK(parse("{\"body\": \"a\"}") == "f.jsonl: line 7: no \"text\" field");
  CHECK(parse("{\"text\": 5}") == "f.jsonl: line 7: \"text\" is not a string (its value starts with '5')");
}

TEST_CASE("JSON lines: the text as Python's json.loads reads it, invalid UTF-8 left to the caller", "[tokenizer][readers]") {
  std::string text;
  CHECK(parse("{\"text\": \"a\", \"text\": \"last wins\", \"x\": NaN, \"y\": -Infinity}", &text).empty());
  CHECK(text == "last wins");
  CHECK(parse("{\"text\": \"\\ud83d\\ude00 \\ud800 \\u00e9\"}", &text).empty());
  CHECK(text == "\xF0\x9F\x98\x80 \xEF\xBF\xBD \xC3\xA9");
  CHECK(parse("{\"text\": \"bad \xFF\xE2\x82\"}", &text).empty());
  CHECK(text == "bad \xFF\xE2\x82");  // raw: replaced (and counted) by the caller
  std::string clean;
  size_t replaced = 0;
  CHECK(utf8_sanitize(text, clean, &replaced) == "bad \xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(replaced == 2);

  // random objects written by nlohmann::json: the field comes back exactly
  std::mt19937 rng(11);
  const std::vector<std::string> atoms = {"a", " ", "\"", "\\", "/", "\n", "\t", "\x01", "é", "日本", "😀", "\x7F", "{", "]"};
  for (int i = 0; i < 500; ++i) {
    std::string want;
    for (int k = int(rng() % 12); k > 0; --k) want += atoms[rng() % atoms.size()];
    nlohmann::json j = {{"id", int(rng() % 1000)}, {"text", want}, {"meta", {{"n", {1, 2.5, nullptr}}, {"s", want}}}};
    std::string line = j.dump(rng() % 2 ? -1 : 1, ' ', rng() % 2 == 0);
    for (char& c : line)
      if (c == '\n') c = ' ';
    REQUIRE(parse(line, &text).empty());
    REQUIRE(text == want);
  }
}

TEST_CASE("corrupted JSON lines: always InputError with a column inside the line", "[tokenizer][readers]") {
  std::mt19937 rng(23);
  const std::string base = R"({"id": 12, "text": "héllo \u00e9 \ud83d\ude00", "tags": ["a", {"b": [1, 2.5e-3, true, null]}]})";
  for (int i = 0; i < 3000; ++i) {
    std::string line = base;
    for (int k = 1 + int(rng() % 3); k > 0; --k) {
      size_t at = rng() % line.size();
      switch (rng() % 3) {
        case 0: line[at] = char(rng()); break;
        case 1: line.erase(at, 1 + rng() % 4); break;
        default: line.insert(at, 1, "{}[]\",:\\\0\xEF"[rng() % 11]); break;
      }
      if (line.empty()) line = "x";
    }
    std::string text;
    std::string err;
    REQUIRE_NOTHROW(err = parse(line, &text));
    if (err.empty() || err.find(", column ") == std::string::npos) continue;
    size_t col = std::stoul(err.substr(err.find(", column ") + 9));
    INFO(line);
    CHECK(col >= 1);
    CHECK(col <= line.size() + 1);
  }
}

TEST_CASE("parquet fuzz corpus: valid files read, hostile ones refused with InputError", "[tokenizer][readers][parquet]") {
  const fs::path dir = fs::path(MOUSSE_SOURCE_DIR) / "tests/fuzz/corpus/parquet";
  REQUIRE(fs::is_directory(dir));
  size_t valid = 0, hostile = 0;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string(), path = e.path().string();
    INFO(name);
    ReaderOptions opt;
    if (name.rfind("hostile_", 0) == 0) {
      std::string err = input_error([&] {
        auto r = open_parquet(path, opt);
        read_all(*r);
      });
      CHECK(err.rfind(path + ": row group 0", 0) == 0);
      ++hostile;
    } else if (name.rfind("valid_", 0) == 0 && name.find("two_billion") == std::string::npos) {
      // make_seeds.py's seven documents; the optional columns hold nulls at 1 and 4
      auto r = open_parquet(path, opt);
      ReadAll all = read_all(*r);
      if (name.find("_opt") != std::string::npos) {
        CHECK(all.docs.size() == 5);
        CHECK(r->skipped() == 2);
      } else if (name.find("_req") != std::string::npos) {
        REQUIRE(all.docs.size() == 7);
        CHECK(all.docs[2] == "naïve café 日本語 😀 'll");
        CHECK(all.docs[4] == std::string(300, 'x'));
      }
      ++valid;
    }
  }
  CHECK(hostile >= 10);
  CHECK(valid >= 24);
  // an empty table (one row group of no rows, no page) is no documents
  auto r = open_parquet((dir / "regression_empty_table.parquet").string(), ReaderOptions{});
  CHECK(read_all(*r).docs.empty());
  // two billion nulls from six bytes of levels: counted in one step, none stored
  r = open_parquet((dir / "valid_two_billion_nulls.parquet").string(), ReaderOptions{});
  CHECK(read_all(*r).docs.empty());
  CHECK(r->skipped() == 2147483647u);
}

TEST_CASE("shard names of a run, and the output lock", "[tokenizer][output]") {
  CHECK(is_shard_of("fineweb_val_000000.bin", "fineweb"));
  CHECK(is_shard_of("fineweb_train_000012.bin", "fineweb"));
  CHECK(is_shard_of("fineweb_train_1000000.bin", "fineweb"));
  CHECK_FALSE(is_shard_of("fineweb_train_00001.bin", "fineweb"));
  CHECK_FALSE(is_shard_of("fineweb_test_000001.bin", "fineweb"));
  CHECK_FALSE(is_shard_of("fineweb_b_val_000000.bin", "fineweb"));
  CHECK_FALSE(is_shard_of("fineweb_val_00000a.bin", "fineweb"));
  CHECK_FALSE(is_shard_of("fineweb_val_000000.bin.partial", "fineweb"));
  CHECK(is_shard_of("fineweb_b_val_000000.bin", "fineweb_b"));
  CHECK(is_partial_shard_of(".fineweb_val_000000.bin.partial", "fineweb"));
  CHECK_FALSE(is_partial_shard_of("fineweb_val_000000.bin.partial", "fineweb"));
  CHECK_FALSE(is_partial_shard_of(".other_val_000000.bin.partial", "fineweb"));

  mousse_test::TempDir tmp;
  const fs::path dir = tmp.path;
  {
    OutputLock a;
    REQUIRE(a.acquire(dir.string(), "x").empty());
    CHECK(fs::exists(dir / ".x.lock"));
    OutputLock b;
    CHECK(b.acquire(dir.string(), "x").find("another mousse-tokenize run is writing x_*.bin") != std::string::npos);
    OutputLock c;
    CHECK(c.acquire(dir.string(), "y").empty());  // another name: its own lock
  }
  CHECK_FALSE(fs::exists(dir / ".x.lock"));  // released and removed
  OutputLock again;
  CHECK(again.acquire(dir.string(), "x").empty());
}

TEST_CASE("a reader's failure that is not an InputError is reported with the file and position", "[tokenizer][readers]") {
  struct Throwing : DocReader {
    int kind;
    explicit Throwing(int k) : kind(k) {}
    bool read(DocBatch&, size_t) override {
      if (kind == 0) throw std::bad_alloc();
      if (kind == 1) std::vector<int>().reserve(size_t(-1) / 2);  // std::length_error("vector::reserve")
      throw InputError("in.parquet", "row group 1", "already an input error");
    }
    uint64_t consumed() const override { return 4096; }
    uint64_t total() const override { return 8192; }
  };
  DocBatch b;
  auto r = guard_reader("in.parquet", std::make_unique<Throwing>(0));
  CHECK(input_error([&] { r->read(b, 1); }) == "in.parquet: byte offset 4096: out of memory while reading the file");
  r = guard_reader("in.parquet", std::make_unique<Throwing>(1));
  CHECK(input_error([&] { r->read(b, 1); }) ==
        "in.parquet: byte offset 4096: a size in the file is too large to allocate (vector::reserve)");
  r = guard_reader("in.parquet", std::make_unique<Throwing>(2));
  CHECK(input_error([&] { r->read(b, 1); }) == "in.parquet: row group 1: already an input error");
  CHECK(r->consumed() == 4096);
  CHECK(r->total() == 8192);
}
