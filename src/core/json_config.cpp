#include "core/json_config.h"

#include <cmath>

namespace mousse {

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

double ConfigNode::number(const std::string& key) const {
  const json& v = at(key, "a number");
  if (!v.is_number()) error(key, "expected a number, got " + v.dump());
  double d = v.get<double>();
  if (!std::isfinite(d)) error(key, "expected a finite number, got " + v.dump());
  return d;
}

int64_t ConfigNode::integer(const std::string& key) const {
  const json& v = at(key, "an integer");
  if (v.is_number_integer()) return v.get<int64_t>();
  // Allow 1e6-style literals that are whole numbers.
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return int64_t(d);
  }
  error(key, "expected an integer, got " + v.dump());
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

double ConfigNode::number(const std::string& key, double def) const {
  return has(key) ? number(key) : def;
}
int64_t ConfigNode::integer(const std::string& key, int64_t def) const {
  return has(key) ? integer(key) : def;
}
std::string ConfigNode::string(const std::string& key, const std::string& def) const {
  return has(key) ? string(key) : def;
}
bool ConfigNode::boolean(const std::string& key, bool def) const {
  return has(key) ? boolean(key) : def;
}

std::vector<double> ConfigNode::numbers(const std::string& key,
                                        const std::vector<double>& def) const {
  if (!has(key)) return def;
  const json& v = j_.at(key);
  if (!v.is_array()) error(key, "expected an array of numbers, got " + v.dump());
  std::vector<double> out;
  for (auto& e : v) {
    if (!e.is_number()) error(key, "expected an array of numbers, got " + v.dump());
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
