// JSON Lines reader (plain, .gz, .zst): one JSON object per line with a string field (default "text").
// Lines are handed over unparsed; parse_json_document() (run by the workers) extracts the text.
// Empty or all-white-space lines are skipped. A trailing "\r" is removed.
#pragma once
#include <string>
#include <string_view>

#include "reader.h"

namespace mousse::tok {

// Extracts `field` from one JSON line. Invalid UTF-8 bytes are replaced (U+FFFD) before parsing.
// Throws InputError naming file and line on malformed JSON, a missing field or a non-string value.
void parse_json_document(std::string_view line, const std::string& field, const std::string& file,
                         uint64_t lineno, std::string& text_out);
}  // namespace mousse::tok
