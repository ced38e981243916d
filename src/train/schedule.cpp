#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace mousse {

double Schedule::factor(int64_t s, int64_t total) const {
  const int64_t warm = int64_t(std::llround(warmup * double(total)));
  if (s < warm) return double(s + 1) / double(warm);  // reaches 1 at the end of warmup
  const double lo = min_ratio;
  if (type == "constant") return 1.0;
  if (type == "cosine") {
    const int64_t span = std::max<int64_t>(1, total - warm);
    double progress = std::min(1.0, double(s - warm) / double(span));
    return lo + (1.0 - lo) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  // wsd: stable at 1, then decay over the last `decay` fraction of steps.
  const int64_t dec = int64_t(std::llround(decay * double(total)));
  const int64_t start = total - dec;
  if (s < start || dec == 0) return 1.0;
  double progress = std::min(1.0, double(s - start + 1) / double(dec));
  double shape = progress;
  if (decay_shape == "cosine") shape = 0.5 * (1.0 - std::cos(M_PI * progress));
  else if (decay_shape == "sqrt") shape = std::sqrt(progress);
  return lo + (1.0 - lo) * (1.0 - shape);
}

int64_t Schedule::stable_end(int64_t total) const {
  if (type != "wsd") return total;
  return total - int64_t(std::llround(decay * double(total)));
}

json Schedule::to_json() const {
  json j = {{"type", type}, {"warmup", warmup}, {"min_ratio", min_ratio}};
  if (type == "wsd") {
    j["decay"] = decay;
    j["decay_shape"] = decay_shape;
  }
  return j;
}

Schedule schedule_from(const ConfigNode& node) {
  Schedule s;
  s.type = node.choice("type", s.type, {"cosine", "wsd", "constant"});
  s.warmup = node.number("warmup", s.warmup);
  s.min_ratio = node.number("min_ratio", s.min_ratio);
  if (s.type == "wsd") {
    s.decay = node.number("decay", s.decay);
    s.decay_shape = node.choice("decay_shape", s.decay_shape, {"linear", "cosine", "sqrt"});
  }
  if (s.warmup < 0 || s.warmup > 1) node.error("warmup", "must be a fraction in [0, 1]");
  if (s.decay < 0 || s.decay > 1) node.error("decay", "must be a fraction in [0, 1]");
  if (s.type == "wsd" && s.warmup + s.decay > 1)
    node.error("decay", "warmup + decay must not exceed 1");
  if (s.min_ratio < 0 || s.min_ratio > 1) node.error("min_ratio", "must be in [0, 1]");
  node.finish();
  return s;
}

}  // namespace mousse
