// JSON text read from files and from users. Every parse of outside input goes through parse_json:
// - nesting is capped: nlohmann's parser itself is iterative, but copying, printing and destroying a value
//   recurse once per level, so a value nested ~100k levels deep overflows the stack later;
// - errors are one short line: the library's messages echo the offending token, which for a broken 64 MiB
//   line is a 64 MiB message, and a NUL byte reads as "unexpected end of input".
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

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

// Fields of JSON that gqe wrote and reads back (checkpoint state, metrics, rendezvous files), checked as
// outside input: nlohmann's get<int64_t>() on 1e19 or on 2.5 converts without a word (undefined behaviour
// out of range). Each throws FormatError("<source>: field '<prefix><key>': <what was expected>") when
// `object` is not an object, the key is missing or the value is not of the kind and range asked for.
[[noreturn]] void throw_field_error(const std::string& source, const std::string& field, const std::string& what);

// An integer written as one in the JSON text (not 3.0, not 1e19) within [lo, hi].
template <typename T>
T json_integer(const nlohmann::json& object, const std::string& key, const std::string& source,
               const std::string& prefix = "", T lo = std::numeric_limits<T>::min(),
               T hi = std::numeric_limits<T>::max()) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  const std::string field = prefix + key;
  if (!object.is_object() || !object.contains(key)) throw_field_error(source, field, "missing");
  const nlohmann::json& v = object.at(key);
  __extension__ typedef __int128 Wide;  // holds every int64_t and uint64_t
  const bool in_range = v.is_number_integer() && [&] {
    const Wide x = v.is_number_unsigned() ? Wide(v.get<uint64_t>()) : Wide(v.get<int64_t>());
    return Wide(lo) <= x && x <= Wide(hi);
  }();
  if (!in_range)
    throw_field_error(source, field, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                         "], got " + truncate_for_message(v.dump()));
  return v.get<T>();
}

// A finite number (integer or not).
double json_number(const nlohmann::json& object, const std::string& key, const std::string& source,
                   const std::string& prefix = "");

}  // namespace gqe
