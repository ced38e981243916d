#pragma once
// `mousse export`: trained weights (train/weight_source.h: a checkpoint, an exported file or a
// Hugging Face directory) written for use elsewhere. Nothing that exists is replaced unless
// `overwrite` says so, and every output appears whole or not at all (temporary name, rename).
#include <string>

#include "core/tensor.h"
#include "train/weight_source.h"

namespace mousse {

// A .safetensors of the canonical weights (the names in docs/architecture.md, "The model"; [padded_vocab, C] embeddings) in
// `dtype`, with the model config and step as metadata: what `init_from` and `mousse sample -w`
// load. The same weights give the same bytes, whichever run made them (so no run config).
void export_safetensors(const WeightSource& src, const std::string& out, DType dtype,
                        bool overwrite);

struct HfExportOptions {
  DType dtype = DType::bf16;  // of model.safetensors: bf16 (round to nearest even) or f32
  std::string vocab_dir;      // GPT-2 vocabulary; "" = find_gpt2_vocab_dir's search
  bool overwrite = false;     // replace an existing export directory (never any other directory)
};
// A Hugging Face `transformers` model directory (model/hf_format.h): config.json,
// generation_config.json, model.safetensors, the GPT-2 tokenizer files and a README.md model card.
void export_hf(const WeightSource& src, const std::string& out_dir, const HfExportOptions& opt);

}  // namespace mousse
