// make_optimizer: the one place that maps a config "type" to an optimizer class.
#include <cmath>

#include "optim/adamw.h"
#include "optim/lion.h"
#include "optim/mousse.h"
#include "optim/muon.h"
#include "optim/soap.h"

namespace mousse {

std::unique_ptr<Optimizer> make_optimizer(const ConfigNode& node, const std::string& group) {
  const std::string type = node.choice("type", "", {"adamw", "lion", "muon", "soap", "mousse"});
  if ((type == "muon" || type == "soap" || type == "mousse") &&
      (group == "embedding" || group == "lm_head"))
    node.error("type", "'" + type + "' is a matrix optimizer (for the attention and MLP " +
                           "matrices); use 'lion' or 'adamw' for the " + group + " group");
  std::unique_ptr<Optimizer> opt;
  if (type == "adamw") opt = std::make_unique<AdamW>(node);
  else if (type == "lion") opt = std::make_unique<Lion>(node);
  else if (type == "muon") opt = std::make_unique<Muon>(node);
  else if (type == "soap") opt = std::make_unique<Soap>(node);
  else opt = std::make_unique<Mousse>(node);
  return opt;
}

void read_betas(const ConfigNode& node, double& beta1, double& beta2) {
  auto betas = node.numbers("betas", {beta1, beta2}, NumRange::right_open(0, 1));
  if (betas.size() != 2)
    node.error("betas", "expected two numbers [beta1, beta2], each in [0, 1)");
  beta1 = betas[0];
  beta2 = betas[1];
}

ComputeCopy compute_copy_for(const Param& p, const OptimStep& s) {
  if (!s.write_compute || !p.compute.defined() || p.compute.data == p.weight.data) return {};
  return ComputeCopy{p.compute, s.compute_seed, p.offset};
}

double tensor_rms(Ops& ops, const Tensor& t) {
  return t.numel() ? std::sqrt(ops.sum_squares(t) / double(t.numel())) : 0.0;
}

}  // namespace mousse
