// UTF-8 checks for strings that end up in JSON (nlohmann::json refuses to serialise invalid UTF-8) or in
// messages (a file name with stray bytes is shown with those bytes escaped).
#pragma once
#include <string>
#include <string_view>

namespace gqe {

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// `s` with each byte that is not part of a well-formed UTF-8 sequence written as \xNN.
std::string escape_invalid_utf8(std::string_view s);

}  // namespace gqe
