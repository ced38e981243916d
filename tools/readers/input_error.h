// Errors about input files: always name the file and the position (byte offset, line, row group...).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace mousse::tok {

class InputError : public std::runtime_error {
 public:
  InputError(const std::string& file, const std::string& where, const std::string& what)
      : std::runtime_error(file + (where.empty() ? "" : ": " + where) + ": " + what) {}
};

// Returns strerror(errno) for messages.
std::string errno_message();

}  // namespace mousse::tok
