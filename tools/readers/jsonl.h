// JSON Lines reader (plain, .gz, .zst): one JSON object per line with a string field (default "text").
// Lines are handed over unparsed; parse_json_document() (run by the workers) extracts the text.
// Empty or all-white-space lines are skipped. A trailing "\r" is removed. A UTF-8 byte order mark at
// the start of the file is skipped (as Python's "utf-8-sig" codec does); anywhere else it is an error.
#pragma once
#include <string>
#include <string_view>

#include "reader.h"

namespace mousse::tok {

// Extracts `field` from one JSON line into text_out, its bytes as written: invalid UTF-8 is left in
// place for the caller to replace (U+FFFD, as Python's errors="replace") and count. Throws InputError
// naming the file, the line and (for malformed JSON) the byte column and the reason: a NUL byte, a
// byte order mark, nesting deeper than 500 levels, an unterminated string, ...; or a missing field or
// a non-string value.
void parse_json_document(std::string_view line, const std::string& field, const std::string& file,
                         uint64_t lineno, std::string& text_out);
}  // namespace mousse::tok
