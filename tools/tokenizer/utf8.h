// UTF-8 helpers for the tokenizer: validation and Python-compatible replacement of invalid bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mousse::tok {

// Length of the valid UTF-8 prefix of `s` (s.size() when all of it is valid).
size_t utf8_valid_prefix(std::string_view s);

// Decode `s` as Python's bytes.decode("utf-8", errors="replace") does and re-encode: every maximal
// invalid subpart (Unicode's "substitution of maximal subparts", as CPython) becomes U+FFFD.
// Surrogate code points encoded in UTF-8 (ED A0..BF xx) are invalid, like in Python.
// Returns the number of replacements made; `out` receives the cleaned text.
size_t utf8_replace_invalid(std::string_view s, std::string& out);

// If `s` is valid, returns s unchanged (no copy); otherwise cleans it into `scratch` and returns a
// view of it. `replaced` (optional) receives the number of U+FFFD inserted.
std::string_view utf8_sanitize(std::string_view s, std::string& scratch, size_t* replaced = nullptr);

// Append the UTF-8 encoding of code point `cp` (must be a scalar value) to `out`.
void utf8_append(std::string& out, uint32_t cp);

}  // namespace mousse::tok
