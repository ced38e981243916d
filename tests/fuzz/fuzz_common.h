// Shared by the fuzz targets. Each target is a libFuzzer entry point (LLVMFuzzerTestOneInput): it
// hands the input to one reader of the project and accepts only that reader's documented error type;
// anything else (another exception, a crash, a sanitizer report, a hang) is a finding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

namespace mousse::fuzz {

// The readers take paths: writes the input to `file_name` in a private temporary directory (one per
// process, removed at exit), replacing the previous input, and returns the path.
std::string write_input(const uint8_t* data, size_t size, const std::string& file_name);

// Reports an exception the target does not accept (naming its type) and aborts, so the fuzzer
// records the input.
[[noreturn]] void unexpected(const char* target, const std::exception& e);

}  // namespace mousse::fuzz
