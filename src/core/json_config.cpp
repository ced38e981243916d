#include "core/json_config.h"

#include <cmath>
#include <sstream>

namespace mousse {

std::string format_int_bound(int64_t v) {
  if (v == std::numeric_limits<int64_t>::min()) return "-2^63";
  if (v < 0) return "-" + format_int_bound(-v);
  for (int k = 16; k < 63; k++) {
    const int64_t p = int64_t(1) << k;
    if (v == p) return "2^" + std::to_string(k);
    if (v == p - 1) return "2^" + std::to_string(k) + " - 1";
  }
  if (v == std::numeric_limits<int64_t>::max()) return "2^63 - 1";
  return std::to_string(v);
}

std::string json_error_text(const json::exception& e) {
  std::string m = e.what();
  if (m.rfind("[json.exception.", 0) == 0 && m.find("] ") != std::string::npos)
    m = m.substr(m.find("] ") + 2);
  return m;
}

std::string IntRange::str() const {
  return "[" + format_int_bound(lo) + ", " + format_int_bound(hi) + "]";
}

bool NumRange::contains(double v) const {
  if (!std::isfinite(v)) return false;
  return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
}

std::string NumRange::str() const {
  auto num = [](double d) {
    if (std::isinf(d)) return std::string(d > 0 ? "inf" : "-inf");
    std::ostringstream os;
    os << d;  // shortest of %g: 0, 1, 0.5, 1e-12
    return os.str();
  };
  return std::string(lo_open ? "(" : "[") + num(lo) + ", " + num(hi) + (hi_open ? ")" : "]");
}

ConfigNode::ConfigNode(const json& j, std::string path, std::string file)
    : j_(j), path_(std::move(path)), file_(std::move(file)) {
  if (!j_.is_object())
    fail(file_, ": '", path_.empty() ? "<top level>" : path_, "' must be a JSON object, got ",
         j_.type_name());
}

std::string ConfigNode::full(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

void ConfigNode::error(const std::string& key, const std::string& message) const {
  fail(file_, ": key '", full(key), "': ", message);
}

bool ConfigNode::has(const std::string& key) const {
  read_.insert(key);
  return j_.contains(key) && !j_.at(key).is_null();
}

const json& ConfigNode::at(const std::string& key, const char* expected) const {
  read_.insert(key);
  if (!j_.contains(key)) error(key, std::string("missing; expected ") + expected);
  return j_.at(key);
}

double ConfigNode::number(const std::string& key, NumRange range) const {
  const std::string expected = "a number in " + range.str();
  const json& v = at(key, expected.c_str());
  if (!v.is_number()) error(key, "expected " + expected + ", got " + v.dump());
  const double d = v.get<double>();
  if (!range.contains(d)) error(key, "expected " + expected + ", got " + v.dump());
  return d;
}

int64_t ConfigNode::integer(const std::string& key, IntRange range) const {
  const std::string expected = "an integer in " + range.str();
  const json& v = at(key, expected.c_str());
  auto bad = [&]() { error(key, "expected " + expected + ", got " + v.dump()); };
  int64_t i = 0;
  if (v.is_number_unsigned()) {  // a non-negative literal, possibly beyond int64
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) bad();
    i = int64_t(u);
  } else if (v.is_number_integer()) {
    i = v.get<int64_t>();
  } else if (v.is_number_float()) {
    // 1e6-style literals of whole numbers, below 2^53: from 2^53 on a double no longer holds
    // every integer, so the value read might not be the one written.
    const double d = v.get<double>();
    if (!(std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9007199254740992.0)) bad();
    i = int64_t(d);
  } else {
    bad();
  }
  if (!range.contains(i)) bad();
  return i;
}

std::string ConfigNode::string(const std::string& key) const {
  const json& v = at(key, "a string");
  if (!v.is_string()) error(key, "expected a string, got " + v.dump());
  return v.get<std::string>();
}

bool ConfigNode::boolean(const std::string& key) const {
  const json& v = at(key, "true or false");
  if (!v.is_boolean()) error(key, "expected true or false, got " + v.dump());
  return v.get<bool>();
}

double ConfigNode::number(const std::string& key, double def, NumRange range) const {
  return has(key) ? number(key, range) : def;
}
int64_t ConfigNode::integer(const std::string& key, int64_t def, IntRange range) const {
  return has(key) ? integer(key, range) : def;
}
std::string ConfigNode::string(const std::string& key, const std::string& def) const {
  return has(key) ? string(key) : def;
}
bool ConfigNode::boolean(const std::string& key, bool def) const {
  return has(key) ? boolean(key) : def;
}

std::vector<double> ConfigNode::numbers(const std::string& key, const std::vector<double>& def,
                                        NumRange range) const {
  if (!has(key)) return def;
  const json& v = j_.at(key);
  auto bad = [&]() {
    error(key, "expected an array of numbers in " + range.str() + ", got " + v.dump());
  };
  if (!v.is_array()) bad();
  std::vector<double> out;
  for (auto& e : v) {
    if (!e.is_number() || !range.contains(e.get<double>())) bad();
    out.push_back(e.get<double>());
  }
  return out;
}

std::vector<std::string> ConfigNode::strings(const std::string& key,
                                             const std::vector<std::string>& def) const {
  if (!has(key)) return def;
  const json& v = j_.at(key);
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) error(key, "expected a string or an array of strings, got " + v.dump());
  std::vector<std::string> out;
  for (auto& e : v) {
    if (!e.is_string()) error(key, "expected an array of strings, got " + v.dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::string ConfigNode::choice(const std::string& key, const std::string& def,
                               const std::vector<std::string>& choices) const {
  std::string s = string(key, def);
  for (auto& c : choices)
    if (s == c) return s;
  std::string list;
  for (auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  error(key, "'" + s + "' is not one of: " + list);
}

ConfigNode ConfigNode::child(const std::string& key, bool required) const {
  read_.insert(key);
  if (!j_.contains(key) || j_.at(key).is_null()) {
    if (required) error(key, "missing; expected an object");
    return ConfigNode(json::object(), full(key), file_);
  }
  if (!j_.at(key).is_object()) error(key, "expected an object, got " + j_.at(key).dump());
  return ConfigNode(j_.at(key), full(key), file_);
}

void ConfigNode::finish() const {
  for (auto& [k, v] : j_.items()) {
    if (read_.count(k)) continue;
    // The keys this section asked for are exactly the ones it takes, so list them: the usual
    // cause is a key of another optimizer type left behind by `--set optimizer.X.type=...`.
    std::string known;
    for (auto& r : read_) known += (known.empty() ? "" : ", ") + r;
    std::string where = path_.empty() ? "the top level" : "'" + path_ + "'";
    if (j_.contains("type") && j_.at("type").is_string())
      where += " of type '" + j_.at("type").get<std::string>() + "'";
    error(k, "unknown key; " + where + " takes: " + known +
                 " (README.md lists the config keys, docs/optimizers.md the optimizer keys)");
  }
}

}  // namespace mousse
