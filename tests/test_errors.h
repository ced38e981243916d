#pragma once
// The trainer's C++ tests: the message of the mousse::Error a call throws.
#include <functional>
#include <string>

#include "core/error.h"
#include "test_files.h"

namespace mousse_test {

// The message of the mousse::Error that f throws, "" when it throws none.
inline std::string error_of(const std::function<void()>& f) { return message_of<mousse::Error>(f); }

}  // namespace mousse_test
