#include "gpt2_vocab.h"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "utf8.h"

namespace mousse::tok {

const std::vector<uint32_t>& gpt2_byte_to_unicode() {
  static const std::vector<uint32_t> table = [] {
    std::vector<uint32_t> t(256, 0);
    std::vector<bool> printable(256, false);
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      if (printable[b]) t[b] = b;
      else t[b] = 256 + n++;
    }
    return t;
  }();
  return table;
}

namespace {
std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open GPT-2 vocabulary file " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Maps a GPT-2 "unicode-escaped" token string back to raw bytes.
std::string unescape(const std::string& s, const std::unordered_map<uint32_t, uint8_t>& inv,
                     const std::string& file) {
  std::string out;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    int len;
    unsigned c = p[i];
    if (c < 0x80) { cp = c; len = 1; }
    else if (c < 0xE0 && i + 1 < s.size()) { cp = ((c & 0x1F) << 6) | (p[i + 1] & 0x3F); len = 2; }
    else throw std::runtime_error(file + ": unexpected character in token '" + s + "'");
    auto it = inv.find(cp);
    if (it == inv.end()) throw std::runtime_error(file + ": unexpected character in token '" + s + "'");
    out.push_back(char(it->second));
    i += len;
  }
  return out;
}
}  // namespace

Gpt2Vocab load_gpt2_vocab(const std::string& dir) {
  const std::string enc_path = dir + "/encoder.json", bpe_path = dir + "/vocab.bpe";
  std::unordered_map<uint32_t, uint8_t> inv;
  const auto& b2u = gpt2_byte_to_unicode();
  for (int b = 0; b < 256; ++b) inv[b2u[b]] = uint8_t(b);

  Gpt2Vocab v;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(enc_path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(enc_path + ": invalid JSON: " + e.what());
  }
  if (!j.is_object() || j.size() != 50257)
    throw std::runtime_error(enc_path + ": expected an object of 50257 tokens, found " + std::to_string(j.size()));
  v.tokens.assign(50257, std::string());
  std::vector<bool> seen(50257, false);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number_integer()) throw std::runtime_error(enc_path + ": token id is not an integer");
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= 50257 || seen[id]) throw std::runtime_error(enc_path + ": bad or duplicate id " + std::to_string(id));
    seen[id] = true;
    v.tokens[id] = (it.key() == "<|endoftext|>") ? it.key() : unescape(it.key(), inv, enc_path);
  }
  if (v.tokens[50256] != "<|endoftext|>") throw std::runtime_error(enc_path + ": id 50256 is not <|endoftext|>");

  // vocab.bpe: "#version" line, then one merge "a b" per line; merge k creates token 256 + k.
  std::string bpe = read_file(bpe_path);
  std::unordered_map<std::string, uint32_t> ids;
  ids.reserve(60000);
  for (uint32_t i = 0; i < 50256; ++i) ids.emplace(v.tokens[i], i);
  std::istringstream in(bpe);
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (lineno == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos) throw std::runtime_error(bpe_path + ":" + std::to_string(lineno) + ": malformed merge line");
    std::string a = unescape(line.substr(0, sp), inv, bpe_path), b = unescape(line.substr(sp + 1), inv, bpe_path);
    auto ia = ids.find(a), ib = ids.find(b), iab = ids.find(a + b);
    uint32_t want = uint32_t(256 + v.merges.size());
    if (ia == ids.end() || ib == ids.end() || iab == ids.end() || iab->second != want)
      throw std::runtime_error(bpe_path + ":" + std::to_string(lineno) +
                               ": merge does not match encoder.json (ids must equal BPE ranks)");
    v.merges.emplace_back(ia->second, ib->second);
  }
  if (v.merges.size() != 50000)
    throw std::runtime_error(bpe_path + ": expected 50000 merges, found " + std::to_string(v.merges.size()));
  // The first 256 ids must be the single bytes.
  for (uint32_t i = 0; i < 256; ++i)
    if (v.tokens[i].size() != 1) throw std::runtime_error(enc_path + ": ids 0..255 must be single bytes");
  return v;
}

}  // namespace mousse::tok
