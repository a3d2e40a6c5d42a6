#include "gqe/core/json.h"

namespace gqe {

std::string truncate_for_message(const std::string& s, size_t max_chars) {
  if (s.size() <= max_chars) return s;
  return s.substr(0, max_chars) + "... (" + std::to_string(s.size()) + " characters)";
}

namespace {
struct TooDeep {};

// The library's messages start with "[json.exception.<kind>.<id>] ": not for users.
std::string strip_exception_id(std::string what) {
  const size_t bracket = what.find("] ");
  if (what.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) what = what.substr(bracket + 2);
  return what;
}
}  // namespace

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  const size_t nul = text.find('\0');
  if (nul != std::string::npos)
    throw JsonError(source + ": not valid JSON: a NUL byte at byte offset " + std::to_string(nul));
  // The callback sees every value with its depth; stopping at the first one below the cap keeps whatever
  // was built shallow enough to destroy safely.
  const nlohmann::json::parser_callback_t depth_cap = [](int depth, nlohmann::json::parse_event_t,
                                                           nlohmann::json&) {
    if (depth > kMaxJsonDepth) throw TooDeep{};
    return true;
  };
  try {
    return nlohmann::json::parse(text, depth_cap);
  } catch (const TooDeep&) {
    throw JsonError(source + ": not valid JSON for gqe: nested deeper than " + std::to_string(kMaxJsonDepth) +
                    " levels");
  } catch (const nlohmann::json::out_of_range& e) {
    // A number too large for a double (1e999): the library reports it as out_of_range, not parse_error.
    throw JsonError(source + ": not valid JSON for gqe: " + truncate_for_message(strip_exception_id(e.what()), 200));
  } catch (const nlohmann::json::parse_error& e) {
    // what() is "[json.exception.parse_error.N] parse error at line L, column C: <reason>; last read: '<token>'".
    throw JsonError(source + ": not valid JSON: " + truncate_for_message(strip_exception_id(e.what()), 200) + " (byte offset " +
                    std::to_string(e.byte) + ")");
  }
}

}  // namespace gqe
