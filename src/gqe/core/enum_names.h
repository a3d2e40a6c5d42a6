// Closed sets of names (config fields, recipe fields, command-line values) as enums. Each enum's spellings
// are written once, in its EnumNames specialisation; parsing, printing, JSON writing and the error that
// lists the valid names all read them from there, so a file or a flag spells a value the same everywhere.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gqe/core/error.h"
#include "gqe/core/format.h"

namespace gqe {

// Specialised by GQE_ENUM_NAMES: `what` names the set in errors ("decay shape"), `values` pairs each
// enumerator with its spelling, in the order errors list them.
template <class E>
struct EnumNames;

#define GQE_ENUM_NAMES(E, WHAT, ...)                                     \
  template <>                                                            \
  struct EnumNames<E> {                                                  \
    static constexpr const char* what = WHAT;                            \
    static constexpr std::pair<E, const char*> values[] = {__VA_ARGS__}; \
  };

// The spelling of `e` (what JSON files and flags carry).
template <class E>
const char* to_string(E e) {
  for (const auto& [v, n] : EnumNames<E>::values)
    if (v == e) return n;
  return "?";
}

template <class E>
std::optional<E> enum_from_string(const std::string& s) {
  for (const auto& [v, n] : EnumNames<E>::values)
    if (s == n) return v;
  return std::nullopt;
}

// "a, b or c": the accepted spellings, for error messages.
template <class E>
std::string enum_choices() {
  std::vector<std::string> names;
  for (const auto& [v, n] : EnumNames<E>::values) names.push_back(n);
  return or_list(names);
}

// "unknown decay shape 'exp' (expected linear, cosine or sqrt)"
template <class E>
std::string unknown_enum_message(const std::string& s) {
  return std::string("unknown ") + EnumNames<E>::what + " '" + s + "' (expected " + enum_choices<E>() + ")";
}

// `s` as an E; otherwise throws gqe::ConfigError "<where>: unknown <what> 's' (expected a, b or c)", where
// `where` names the file and field or the flag the value came from.
template <class E>
E parse_enum(const std::string& s, const std::string& where) {
  if (const std::optional<E> v = enum_from_string<E>(s)) return *v;
  throw ConfigError(where + ": " + unknown_enum_message<E>(s));
}

}  // namespace gqe
