#pragma once
// Learning-rate schedules as a factor of each group's peak LR; phases are fractions of the
// total number of steps (paper: 10% linear warmup then cosine to 0; WSD 10%/10%).
#include <cstdint>
#include <string>

#include "core/json_config.h"

namespace mousse {

struct Schedule {
  std::string type = "cosine";  // "cosine", "wsd", "constant"
  double warmup = 0.1;          // fraction of total steps of linear warmup
  double decay = 0.1;           // wsd: fraction of total steps of the final decay
  double min_ratio = 0.0;       // the floor, as a fraction of the peak
  std::string decay_shape = "linear";  // wsd decay: "linear", "cosine" or "sqrt"

  // Factor in [min_ratio, 1] for 0-based step s of `total`.
  double factor(int64_t s, int64_t total) const;
  // Last step of the stable phase (wsd), used to report the loss before decay (paper Fig. 9).
  int64_t stable_end(int64_t total) const;
  json to_json() const;
};

Schedule schedule_from(const ConfigNode& node);

}  // namespace mousse
