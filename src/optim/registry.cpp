// make_optimizer: the one place that maps a config "type" to an optimizer class.
#include <cmath>

#include "optim/adamw.h"
#include "optim/lion.h"

namespace mousse {

std::unique_ptr<Optimizer> make_optimizer(const ConfigNode& node, const std::string& group) {
  const std::string type = node.choice("type", "", {"adamw", "lion", "muon", "soap", "mousse"});
  std::unique_ptr<Optimizer> opt;
  if (type == "adamw") opt = std::make_unique<AdamW>(node);
  else if (type == "lion") opt = std::make_unique<Lion>(node);
  else node.error("type", "'" + type + "' is not implemented yet");
  (void)group;
  return opt;
}

double tensor_rms(Ops& ops, const Tensor& t) {
  return t.numel() ? std::sqrt(ops.sum_squares(t) / double(t.numel())) : 0.0;
}

}  // namespace mousse
