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
  // wsd: stable at 1, then a decay over the last D = round(decay · N) of the N steps in Dion's
  // form: the fraction left, r = (N − s) / D, is 1 at the first decay step and 1/D at the last,
  // and reaches 0 one step after the last, as the cosine schedule does: no step trains at the
  // floor (a step at lr 0 would be wasted).
  const int64_t dec = int64_t(std::llround(decay * double(total)));
  const int64_t start = total - dec;
  if (s < start || dec == 0) return 1.0;
  const double r = std::max(0.0, double(total - s) / double(dec));
  // The shapes as functions of the progress p = 1 − r: linear 1 − p, cosine ½(1 + cos πp),
  // sqrt 1 − √p.
  double left = r;
  if (decay_shape == "cosine") left = 0.5 * (1.0 - std::cos(M_PI * r));
  else if (decay_shape == "sqrt") left = 1.0 - std::sqrt(1.0 - r);
  return lo + (1.0 - lo) * left;
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
  s.warmup = node.number("warmup", s.warmup, NumRange::closed(0, 1));
  s.min_ratio = node.number("min_ratio", s.min_ratio, NumRange::closed(0, 1));
  if (s.type == "wsd") {
    s.decay = node.number("decay", s.decay, NumRange::closed(0, 1));
    s.decay_shape = node.choice("decay_shape", s.decay_shape, {"linear", "cosine", "sqrt"});
    if (s.warmup + s.decay > 1) node.error("decay", "warmup + decay must not exceed 1");
  }
  node.finish();
  return s;
}

}  // namespace mousse
