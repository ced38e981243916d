#pragma once
// The README.md model card of a Hugging Face export: architecture, how it maps onto Qwen3, and
// what is known of its training (config, optimizer, steps, tokens, final validation loss) from
// the checkpoint's metadata and its run's metrics.jsonl. What is not known is said to be unknown.
#include <string>

#include "core/tensor.h"
#include "train/weight_source.h"

namespace mousse {

// The validation loss logged at `step` in the run's metrics.jsonl, looked for in the run
// config's log.dir and next to the checkpoint's directory; NaN when there is none. `where` gets
// the metrics file it came from.
double logged_val_loss(const WeightSource& src, int64_t step, std::string* where);

std::string model_card(const WeightSource& src, DType dtype);

}  // namespace mousse
