#pragma once
#include <memory>
#include <string>

#include "backend/ops.h"

namespace mousse {
// device: "cpu", "cuda" or "auto" (cuda when this binary has the CUDA backend and a GPU is
// usable, else cpu).
std::unique_ptr<Ops> make_ops(const std::string& device);
}  // namespace mousse
