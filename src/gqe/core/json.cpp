#include "gqe/core/json.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace gqe {

std::string truncate_for_message(const std::string& s, size_t max_chars) {
  if (s.size() <= max_chars) return s;
  return s.substr(0, max_chars) + "... (" + std::to_string(s.size()) + " characters)";
}

void throw_field_error(const std::string& source, const std::string& field, const std::string& what) {
  throw FormatError(source + ": field '" + field + "': " + what);
}

double json_number(const nlohmann::json& object, const std::string& key, const std::string& source,
                   const std::string& prefix) {
  const std::string field = prefix + key;
  if (!object.is_object() || !object.contains(key)) throw_field_error(source, field, "missing");
  const nlohmann::json& v = object.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    throw_field_error(source, field, "expected a finite number, got " + truncate_for_message(v.dump()));
  return v.get<double>();
}

namespace {

struct TooDeep {};

// "attention.rope_theta" from the keys open at each depth ("[]" for an array element's object).
std::string field_path(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += k.empty() ? "[]" : (out.empty() ? "" : ".") + k;
  return out;
}

}  // namespace

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  const size_t nul = text.find('\0');
  if (nul != std::string::npos)
    throw JsonError(source + ": not valid JSON: a NUL byte at byte offset " + std::to_string(nul));
  // The callback sees every value with its depth; stopping at the first one below the cap keeps whatever
  // was built shallow enough to destroy safely. It also remembers the keys on the way down, so that a
  // number the lexer cannot represent (1e999) is reported with the field it belongs to.
  std::vector<std::string> keys;
  const nlohmann::json::parser_callback_t depth_cap = [&keys](int depth, nlohmann::json::parse_event_t event,
                                                                nlohmann::json& parsed) {
    if (depth > kMaxJsonDepth) throw TooDeep{};
    if (event == nlohmann::json::parse_event_t::key && depth >= 1) {
      keys.resize(size_t(depth));
      keys[size_t(depth) - 1] = parsed.is_string() ? parsed.get<std::string>() : std::string("?");
    } else if (event == nlohmann::json::parse_event_t::object_end || event == nlohmann::json::parse_event_t::array_end) {
      keys.resize(std::min(keys.size(), size_t(std::max(depth, 0))));
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, depth_cap);
  } catch (const TooDeep&) {
    throw JsonError(source + ": not valid JSON for gqe: nested deeper than " + std::to_string(kMaxJsonDepth) +
                    " levels");
  } catch (const nlohmann::json::parse_error& e) {
    // what() is "[json.exception.parse_error.N] parse error at line L, column C: <reason>; last read: '<token>'".
    std::string reason = e.what();
    const size_t bracket = reason.find("] ");
    if (reason.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) reason = reason.substr(bracket + 2);
    throw JsonError(source + ": not valid JSON: " + truncate_for_message(reason, 200) + " (byte offset " +
                    std::to_string(e.byte) + ")");
  } catch (const nlohmann::json::out_of_range& e) {
    // The lexer's "number overflow parsing '<token>'" (406): a number beyond the double range.
    std::string token = e.what();
    const size_t q = token.find('\'');
    token = q == std::string::npos ? std::string("a number") : token.substr(q + 1, token.size() - q - 2);
    const std::string field = field_path(keys);
    throw JsonError(source + ": " + (field.empty() ? "" : "field '" + field + "': ") + "the number " +
                    truncate_for_message(token, 40) + " is out of range (beyond the largest double)");
  }
}

}  // namespace gqe
