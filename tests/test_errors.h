#pragma once
// The trainer's C++ tests: the message of the error a call throws.
#include <functional>
#include <string>

#include "core/error.h"

namespace mousse_test {

// The message of the mousse::Error that f throws, "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mousse::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace mousse_test
