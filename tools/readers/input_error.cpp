#include "input_error.h"

#include <cerrno>
#include <cstring>

namespace mousse::tok {
std::string errno_message() { return std::strerror(errno); }
}  // namespace mousse::tok
