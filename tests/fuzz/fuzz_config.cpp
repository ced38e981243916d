// Fuzz target: the run config loader (src/train/run_config.cpp over src/core/json_config.cpp). The
// input is a config file, optionally followed by a NUL byte and `--set key=value` overrides, one
// per line; the config is read, overridden, parsed and resolved as `mousse train` does, and the
// resolved config serialised as it is for config.json. Accepted errors: mousse::Error.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_common.h"
#include "train/run_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string all(reinterpret_cast<const char*>(data), size);
  size_t nul = all.find('\0');
  std::vector<std::string> sets;
  if (nul != std::string::npos) {
    std::string rest = all.substr(nul + 1);
    all.resize(nul);
    for (size_t a = 0; a <= rest.size();) {
      size_t b = rest.find('\n', a);
      if (b == std::string::npos) b = rest.size();
      if (b > a) sets.push_back(rest.substr(a, b - a));
      a = b + 1;
    }
  }
  const std::string path =
      mousse::fuzz::write_input(reinterpret_cast<const uint8_t*>(all.data()), all.size(), "config.json");
  try {
    mousse::json j = mousse::read_json_file(path);
    mousse::apply_overrides(j, sets, path);
    mousse::RunConfig rc = mousse::parse_run_config(j, path);
    (void)rc.resolved().dump();
  } catch (const mousse::Error&) {
  } catch (const std::exception& e) {
    mousse::fuzz::unexpected("config", e);
  }
  return 0;
}
