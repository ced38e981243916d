#pragma once
// ConfigNode: typed, validated access to one JSON object of a config file.
// Every read names its full key path ("optimizer.matrix.lr") and the file in errors; finish()
// rejects keys nobody read, so a typo in a config is an error, not a silent default.
// Every numeric read takes the range the key accepts, so no value is ever wrapped, truncated
// or accepted out of range: "cfg.json: key 'batch.global_tokens': expected an integer in
// [1, 2^62], got -256".
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mousse {

using json = nlohmann::json;

// The values an integer key accepts: lo <= v <= hi. Printed as "[1, 2^62]".
struct IntRange {
  int64_t lo, hi;
  bool contains(int64_t v) const { return v >= lo && v <= hi; }
  std::string str() const;
};
// Bounds for integer keys: the largest value of an `int` field, and a bound for int64 counts
// (steps, tokens) that leaves room to add and multiply them in int64 without overflow.
constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();    // 2^31 - 1
constexpr int64_t kMaxCount = int64_t(1) << 62;                        // 2^62

// The values a real-valued key accepts (always finite), each bound open or closed:
// NumRange::at_least(0) is "[0, inf)", NumRange::right_open(0, 1) is "[0, 1)".
struct NumRange {
  double lo, hi;
  bool lo_open, hi_open;
  static NumRange closed(double lo, double hi) { return {lo, hi, false, false}; }
  static NumRange right_open(double lo, double hi) { return {lo, hi, false, true}; }
  static NumRange at_least(double lo) { return {lo, kInf, false, true}; }
  static NumRange above(double lo) { return {lo, kInf, true, true}; }
  bool contains(double v) const;
  std::string str() const;
  static constexpr double kInf = std::numeric_limits<double>::infinity();
};

// "2^62", "2^31 - 1", "-256": powers of two (and one less) from 2^16 up as such, others in full.
std::string format_int_bound(int64_t v);
// nlohmann's message without its "[json.exception.parse_error.101] " prefix, for users.
std::string json_error_text(const json::exception& e);

// One name of an option enum (a config value) and the value it stands for: the table of an
// enum's names serves parsing (ConfigNode::choice) and printing (choice_name) alike.
template <class T>
struct Named {
  const char* name;
  T value;
};
// The name of `v` in `table` ("?" when it has none).
template <class T, size_t N>
const char* choice_name(const Named<T> (&table)[N], T v) {
  for (const Named<T>& e : table)
    if (e.value == v) return e.name;
  return "?";
}

class ConfigNode {
 public:
  ConfigNode(const json& j, std::string path, std::string file);

  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }
  const json& raw() const { return j_; }
  bool has(const std::string& key) const;

  // Required keys. A number is a finite JSON number in `range`; an integer is a JSON integer
  // (or a whole-valued literal such as 1e6, below 2^53 where doubles are exact) in `range`:
  // 1.5, 1e400, 4294967298 for an int32 key and -1 for a count are errors naming the key.
  double number(const std::string& key, NumRange range) const;
  int64_t integer(const std::string& key, IntRange range) const;
  std::string string(const std::string& key) const;
  bool boolean(const std::string& key) const;
  // Optional keys with defaults (the default is not range-checked: the code chose it).
  double number(const std::string& key, double def, NumRange range) const;
  int64_t integer(const std::string& key, int64_t def, IntRange range) const;
  std::string string(const std::string& key, const std::string& def) const;
  bool boolean(const std::string& key, bool def) const;
  // An array of numbers, each in `range`.
  std::vector<double> numbers(const std::string& key, const std::vector<double>& def,
                              NumRange range) const;
  std::vector<std::string> strings(const std::string& key,
                                   const std::vector<std::string>& def) const;
  // A string that must be one of `choices`.
  std::string choice(const std::string& key, const std::string& def,
                     const std::vector<std::string>& choices) const;
  // The same, returning the value the name stands for in `table` (choice_name below):
  //   node.choice("qr", QrMethod::automatic, kQrMethods)
  template <class T, size_t N>
  T choice(const std::string& key, T def, const Named<T> (&table)[N]) const;
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

template <class T, size_t N>
T ConfigNode::choice(const std::string& key, T def, const Named<T> (&table)[N]) const {
  std::vector<std::string> names;
  for (const Named<T>& e : table) names.push_back(e.name);
  const std::string s = choice(key, choice_name(table, def), names);
  for (const Named<T>& e : table)
    if (s == e.name) return e.value;
  return def;  // (not reached: choice() accepts only the table's names)
}

}  // namespace mousse
