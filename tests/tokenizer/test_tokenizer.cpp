// Unit tests of the GPT-2 tokenizer library and the shard writer (no Python needed).
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "bpe.h"
#include "gpt2_tokenizer.h"
#include "pretokenize.h"
#include "shard_writer.h"
#include "utf8.h"

using namespace mousse::tok;

namespace {
std::string vocab_dir() {
  const char* d = std::getenv("MOUSSE_SHARED_DATA");
  std::string dir = std::string(d ? d : "../shared/data") + "/gpt2";
  return dir;
}
const Gpt2Tokenizer& tok() {
  static Gpt2Tokenizer t(vocab_dir());  // throws (test fails) when the shared data is missing
  return t;
}
std::vector<std::string> pieces(const std::string& s) {
  std::vector<std::string> out;
  Pretokenizer pt(s);
  size_t a, n;
  while (pt.next(&a, &n)) out.push_back(s.substr(a, n));
  return out;
}
std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
}  // namespace

TEST_CASE("UTF-8 replacement follows Python's errors='replace'", "[tokenizer][utf8]") {
  std::string out;
  // expected strings computed with CPython: b.decode("utf-8", "replace").encode()
  const std::string R = "\xEF\xBF\xBD";
  struct Case { std::string in, want; };
  std::vector<Case> cases = {
      {"abc", "abc"},
      {"\xff", R},
      {"a\x80" "b", "a" + R + "b"},
      {"\xe2\x82", R},                          // truncated 3-byte sequence: one replacement
      {"\xe2\x82x", R + "x"},
      {"\xf0\x9f\x98", R},
      {"\xed\xa0\x80", R + R + R},              // encoded surrogate: each byte
      {"\xc0\xaf", R + R},                      // overlong
      {"\xe0\x80\x80", R + R + R},
      {"\xf4\x90\x80\x80", R + R + R + R},      // above U+10FFFF
      {"\xe2\x82\xac", "\xe2\x82\xac"},
  };
  for (auto& c : cases) {
    utf8_replace_invalid(c.in, out);
    CHECK(out == c.want);
    CHECK((utf8_valid_prefix(c.in) == c.in.size()) == (c.in == c.want));
  }
}

TEST_CASE("pre-tokenisation follows the GPT-2 regex", "[tokenizer][pretokenize]") {
  using V = std::vector<std::string>;
  CHECK(pieces("Hello world") == V{"Hello", " world"});
  CHECK(pieces("I'll they'RE it's") == V{"I", "'ll", " they", "'", "RE", " it", "'s"});
  CHECK(pieces("a  b") == V{"a", " ", " b"});
  CHECK(pieces("a \n\n b") == V{"a", " \n\n", " b"});
  CHECK(pieces("x\ny") == V{"x", "\n", "y"});
  CHECK(pieces("end   ") == V{"end", "   "});
  CHECK(pieces("123abc!!?") == V{"123", "abc", "!!?"});
  CHECK(pieces(" 42 !x") == V{" 42", " !", "x"});
  CHECK(pieces("!'s") == V{"!'", "s"});
  CHECK(pieces("\xC2\xA0" "a") == V{"\xC2\xA0", "a"});  // NBSP is \s
  CHECK(pieces("") == V{});
  CHECK(char_class(0x85) == kSpace);
  CHECK(char_class(0xA0) == kSpace);
  CHECK(char_class(0xFEFF) == kOther);
  CHECK(char_class(0x3000) == kSpace);
  CHECK(char_class('a') == kLetter);
  CHECK(char_class(0x4E2D) == kLetter);  // 中
  CHECK(char_class(0xBD) == kNumber);    // ½
  CHECK(char_class(0x301) == kOther);    // combining acute (Mn)
}

TEST_CASE("GPT-2 encodings of known strings", "[tokenizer][bpe]") {
  CHECK(tok().encode_ordinary("Hello world") == std::vector<uint32_t>{15496, 995});
  CHECK(tok().encode_ordinary("") == std::vector<uint32_t>{});
  // <|endoftext|> inside text is ordinary text, never 50256
  auto eot = tok().encode_ordinary("<|endoftext|>");
  CHECK(eot.size() > 1);
  for (uint32_t t : eot) CHECK(t != Gpt2Tokenizer::kEot);
  CHECK(tok().decode(std::vector<uint32_t>{Gpt2Tokenizer::kEot}) == "<|endoftext|>");
  CHECK_THROWS(tok().token_bytes(50257));
}

TEST_CASE("decode(encode(x)) == x", "[tokenizer][bpe]") {
  std::mt19937 rng(42);
  const std::vector<std::string> atoms = {"the", " ", "  ", "\n", "'s", "'LL", "1234", "é", "日本", "😀", "\xC2\xA0",
                                          "!!", "\r\n", "x"};
  EncodeCache cache;
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    int n = rng() % 30;
    for (int k = 0; k < n; ++k) s += atoms[rng() % atoms.size()];
    std::vector<uint32_t> a, b;
    tok().encode_ordinary(s, a, &cache);
    tok().encode_ordinary(s, b, nullptr);
    REQUIRE(a == b);
    REQUIRE(tok().decode(a) == s);
  }
}

TEST_CASE("heap merge equals tiktoken's scan merge", "[tokenizer][bpe]") {
  const BpeCore& core = tok().core();
  std::mt19937 rng(7);
  const std::string alphabet = "aabcdeeinorst  \n!1";
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    int n = 2 + rng() % 120;
    for (int k = 0; k < n; ++k) s += alphabet[rng() % alphabet.size()];
    std::vector<uint32_t> a, b;
    core.merge_small(s, a);
    core.merge_large(s, b);
    REQUIRE(a == b);
  }
}

TEST_CASE("shard writer slices the stream like llm.c and never leaves partial shards", "[tokenizer][shards]") {
  std::string dir = "tok_shard_test_dir";
  mkdir(dir.c_str(), 0755);
  for (const char* f : {"x_val_000000.bin", "x_train_000001.bin", "x_train_000002.bin"}) std::remove((dir + "/" + f).c_str());
  std::vector<uint16_t> toks(25);
  for (int i = 0; i < 25; ++i) toks[i] = uint16_t(i);
  {
    ShardWriter w(dir, "x", 10);
    w.write(toks.data(), 7);
    w.write(toks.data() + 7, 18);
    auto files = w.finish();
    REQUIRE(files.size() == 3);
  }
  auto check = [&](const std::string& f, int first, int n) {
    std::string b = read_file(dir + "/" + f);
    REQUIRE(b.size() == 1024 + 2 * size_t(n));
    const int32_t* h = reinterpret_cast<const int32_t*>(b.data());
    CHECK(h[0] == 20240520);
    CHECK(h[1] == 1);
    CHECK(h[2] == n);
    for (int k = 3; k < 256; ++k) CHECK(h[k] == 0);
    const uint16_t* t = reinterpret_cast<const uint16_t*>(b.data() + 1024);
    for (int k = 0; k < n; ++k) CHECK(t[k] == first + k);
  };
  check("x_val_000000.bin", 0, 10);
  check("x_train_000001.bin", 10, 10);
  check("x_train_000002.bin", 20, 5);
  {
    ShardWriter w(dir, "y", 10);
    w.write(toks.data(), 5);
    w.abort();
  }
  struct stat st;
  CHECK(stat((dir + "/y_val_000000.bin").c_str(), &st) != 0);
  CHECK(stat((dir + "/.y_val_000000.bin.partial").c_str(), &st) != 0);
  CHECK(ShardWriter::shard_name("fineweb", 0) == "fineweb_val_000000.bin");
  CHECK(ShardWriter::shard_name("fineweb", 12) == "fineweb_train_000012.bin");
}
