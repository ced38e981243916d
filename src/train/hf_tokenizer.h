#pragma once
// GPT-2's tokenizer in the files Hugging Face `transformers` loads (AutoTokenizer): vocab.json and
// merges.txt (OpenAI's encoder.json and vocab.bpe, byte for byte), tokenizer.json (the same BPE
// for the fast `tokenizers` library: byte-level pre-tokenizer with GPT-2's regex, no prefix
// space), tokenizer_config.json and
// special_tokens_map.json (<|endoftext|> is BOS, EOS and UNK; nothing is added to the text).
#include <map>
#include <string>

namespace mousse {

// The GPT-2 vocabulary directory (encoder.json + vocab.bpe): `explicit_dir` when given, else
// $MOUSSE_GPT2_DIR, else data/gpt2 (where scripts/get-gpt2-vocab.sh puts it), else
// ../shared/data/gpt2. Errors name what is missing and how to get it.
std::string find_gpt2_vocab_dir(const std::string& explicit_dir);

// File name -> contents, after checking that the vocabulary loads (load_gpt2_vocab's checks).
std::map<std::string, std::string> gpt2_tokenizer_files(const std::string& vocab_dir,
                                                        int model_max_length);

}  // namespace mousse
