#include "train/hf_tokenizer.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/json_config.h"
#include "gpt2_tokenizer.h"

namespace mousse {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", path, ": ", std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) fail("cannot read ", path);
  return s.str();
}

const char* kEot = "<|endoftext|>";

}  // namespace

std::string find_gpt2_vocab_dir(const std::string& explicit_dir) {
  try {
    return tok::Gpt2Tokenizer::find_vocab_dir(explicit_dir);  // the one search order
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

std::map<std::string, std::string> gpt2_tokenizer_files(const std::string& vocab_dir,
                                                        int model_max_length) {
  const std::string enc_path = vocab_dir + "/encoder.json", bpe_path = vocab_dir + "/vocab.bpe";
  try {
    tok::Gpt2Tokenizer check(vocab_dir);  // the files agree with each other and with GPT-2's
  } catch (const std::exception& e) {
    fail(e.what());
  }
  std::map<std::string, std::string> files;
  files["vocab.json"] = read_file(enc_path);
  files["merges.txt"] = read_file(bpe_path);

  json vocab;
  try {
    vocab = json::parse(files["vocab.json"]);
  } catch (const std::exception& e) {
    fail(enc_path, ": not valid JSON (", e.what(), ")");
  }
  // vocab.bpe: a "#version" line, then one merge "left right" per line, by rank.
  json merges = json::array();
  std::istringstream lines(files["merges.txt"]);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
      fail(bpe_path, ": merge line '", line, "' is not two tokens separated by one space");
    merges.push_back({line.substr(0, sp), line.substr(sp + 1)});
  }

  const json eot_token = {{"content", kEot}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", true}, {"special", true}};
  json added = eot_token;
  added["id"] = tok::Gpt2Tokenizer::kEot;
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                           {"trim_offsets", true}, {"use_regex", true}};
  json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {added}},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        // As GPT-2's own tokenizer.json. (Merging a piece that is itself a token always gives
        // that token back with GPT-2's merges, so this agrees with tiktoken, which skips it.)
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}}};
  files["tokenizer.json"] = tokenizer.dump(2) + "\n";

  const json special = {{"bos_token", kEot}, {"eos_token", kEot}, {"unk_token", kEot}};
  files["special_tokens_map.json"] = special.dump(2) + "\n";
  json config = special;
  config["tokenizer_class"] = "GPT2Tokenizer";
  config["model_max_length"] = model_max_length;
  config["add_bos_token"] = false;
  config["add_prefix_space"] = false;
  config["clean_up_tokenization_spaces"] = false;  // decode gives back exactly the token bytes
  config["errors"] = "replace";
  config["added_tokens_decoder"] = {{std::to_string(tok::Gpt2Tokenizer::kEot), eot_token}};
  files["tokenizer_config.json"] = config.dump(2) + "\n";
  return files;
}

}  // namespace mousse
