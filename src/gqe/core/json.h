// JSON text read from files and from users. Every parse of outside input goes through parse_json:
// - nesting is capped: nlohmann's parser itself is iterative, but copying, printing and destroying a value
//   recurse once per level, so a value nested ~100k levels deep overflows the stack later;
// - errors are one short line: the library's messages echo the offending token, which for a broken 64 MiB
//   line is a 64 MiB message, and a NUL byte reads as "unexpected end of input".
#pragma once
#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "gqe/core/error.h"

namespace gqe {

// Deeper than any file gqe reads (config, safetensors header, task rows, state) by a wide margin.
constexpr int kMaxJsonDepth = 128;

struct JsonError : FormatError {
  using FormatError::FormatError;
};

// Parses `text`; on failure throws JsonError("<source>: not valid JSON: <reason>"), the reason at most a
// couple of hundred characters and naming the byte offset.
nlohmann::json parse_json(const std::string& text, const std::string& source);

// `s` cut to `max_chars` characters with "..." and the full length appended when longer.
std::string truncate_for_message(const std::string& s, size_t max_chars = 120);

}  // namespace gqe
