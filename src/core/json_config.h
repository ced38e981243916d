#pragma once
// ConfigNode: typed, validated access to one JSON object of a config file.
// Every read names its full key path ("optimizer.matrix.lr") and the file in errors; finish()
// rejects keys nobody read, so a typo in a config is an error, not a silent default.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mousse {

using json = nlohmann::json;

class ConfigNode {
 public:
  ConfigNode(const json& j, std::string path, std::string file);

  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }
  const json& raw() const { return j_; }
  bool has(const std::string& key) const;

  // Required keys.
  double number(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  std::string string(const std::string& key) const;
  bool boolean(const std::string& key) const;
  // Optional keys with defaults.
  double number(const std::string& key, double def) const;
  int64_t integer(const std::string& key, int64_t def) const;
  std::string string(const std::string& key, const std::string& def) const;
  bool boolean(const std::string& key, bool def) const;
  std::vector<double> numbers(const std::string& key, const std::vector<double>& def) const;
  std::vector<std::string> strings(const std::string& key,
                                   const std::vector<std::string>& def) const;
  // A string that must be one of `choices`.
  std::string choice(const std::string& key, const std::string& def,
                     const std::vector<std::string>& choices) const;
  // A nested object (an empty one when absent and !required).
  ConfigNode child(const std::string& key, bool required = false) const;

  // Errors out naming every key of this object that was never read.
  void finish() const;
  // "file: key 'a.b': message"
  [[noreturn]] void error(const std::string& key, const std::string& message) const;

 private:
  const json& at(const std::string& key, const char* expected) const;
  std::string full(const std::string& key) const;
  json j_;
  std::string path_, file_;
  mutable std::set<std::string> read_;
};

}  // namespace mousse
