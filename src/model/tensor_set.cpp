#include "model/tensor_set.h"

#include <map>
#include <sstream>

namespace mousse {

void check_tensor_set(const std::string& file, const std::vector<TensorSpec>& present,
                      const std::vector<TensorSpec>& expected, const std::string& hint) {
  std::map<std::string, Shape> have;
  for (const TensorSpec& t : present) have[t.name] = t.shape;
  std::map<std::string, Shape> want;
  for (const TensorSpec& t : expected) want[t.name] = t.shape;

  std::vector<std::string> missing, extra, shape;
  for (const TensorSpec& t : expected) {
    auto it = have.find(t.name);
    if (it == have.end()) missing.push_back("'" + t.name + "' " + t.shape.str());
    else if (it->second != t.shape)
      shape.push_back("'" + t.name + "' is " + it->second.str() + ", expected " + t.shape.str());
  }
  for (const TensorSpec& t : present)
    if (!want.count(t.name)) extra.push_back("'" + t.name + "' " + t.shape.str());
  if (missing.empty() && extra.empty() && shape.empty()) return;

  // At most a few of each kind: a file of another model would otherwise print hundreds.
  auto list = [](std::ostringstream& os, const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    const size_t show = 6;
    os << "\n  " << what << " (" << v.size() << "): ";
    for (size_t i = 0; i < v.size() && i < show; i++) os << (i ? ", " : "") << v[i];
    if (v.size() > show) os << ", ... and " << v.size() - show << " more";
  };
  std::ostringstream os;
  os << file << ": its tensors do not match the model's:";
  list(os, "missing", missing);
  list(os, "unexpected", extra);
  list(os, "wrong shape", shape);
  if (!missing.empty() && !extra.empty()) os << "\n  (an unexpected tensor may be a misnamed one)";
  if (!hint.empty()) os << "\n  " << hint;
  fail(os.str());
}

}  // namespace mousse
