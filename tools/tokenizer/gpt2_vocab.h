// Loading OpenAI's GPT-2 vocabulary files (encoder.json + vocab.bpe).
#pragma once
#include <string>
#include <vector>

namespace mousse::tok {

struct Gpt2Vocab {
  std::vector<std::string> tokens;  // id -> raw bytes (50257 entries; 50256 is "<|endoftext|>")
  std::vector<std::pair<uint32_t, uint32_t>> merges;  // merges[k] makes token 256 + k
};

// GPT-2's byte <-> printable-unicode mapping (bytes_to_unicode in OpenAI's encoder.py).
const std::vector<uint32_t>& gpt2_byte_to_unicode();

// Loads DIR/encoder.json and DIR/vocab.bpe and checks that they agree (ids are the BPE ranks, as
// tiktoken's data_gym_to_mergeable_bpe_ranks asserts). Throws std::runtime_error naming the file.
Gpt2Vocab load_gpt2_vocab(const std::string& dir);

}  // namespace mousse::tok
