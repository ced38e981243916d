#pragma once
// Checks that a weights file holds exactly the tensors a model needs: not one missing, not one
// extra (a misnamed tensor shows up as both), each with its shape. One error names the file and
// every offending tensor, so a user sees the whole difference at once, before any work starts.
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mousse {

struct TensorSpec {
  std::string name;
  Shape shape;
};

// `file`: what the error names. `hint`: appended to the error (e.g. the naming scheme expected).
void check_tensor_set(const std::string& file, const std::vector<TensorSpec>& present,
                      const std::vector<TensorSpec>& expected, const std::string& hint);

}  // namespace mousse
