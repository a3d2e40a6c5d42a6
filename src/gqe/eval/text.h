// Python string semantics the harness relies on, reproduced on UTF-8 std::string (torch-free).
// lm-evaluation-harness builds prompts with Python str methods; matching its requests byte for byte
// needs their exact behaviour: which characters strip() removes, what capitalize() lower-cases, and
// len() counting code points (acc_norm divides by it), not bytes.
#pragma once
#include <cstdint>
#include <string>

namespace gqe::eval {

// Python str.isspace() for one code point (Unicode White_Space as CPython defines it).
bool is_python_space(uint32_t cp);
// str.strip() / str.rstrip() with no argument.
std::string py_strip(const std::string& s);
std::string py_rstrip(const std::string& s);
std::string py_lstrip(const std::string& s);
// s[:-1] and s[0].lower() + s[1:] (COPA's prompt and choices), on code points. Lower-casing is exact for
// ASCII and Latin-1 letters, as in py_capitalize.
std::string py_drop_last(const std::string& s);
std::string py_lower_first(const std::string& s);
// str.capitalize(): first character upper-cased, every other character lower-cased. Case mapping is
// exact for ASCII and Latin-1 letters; other code points are left unchanged (HellaSwag's ctx_b is
// English text, where this is exact).
std::string py_capitalize(const std::string& s);
// len(str): number of code points. Invalid UTF-8 bytes count one each.
int64_t py_len(const std::string& s);
// str.replace(old, new): every non-overlapping occurrence, scanning left to right, in one pass.
std::string py_replace(const std::string& s, const std::string& from, const std::string& to);
// re.sub(r"\[.*?\]", "", s): removes each shortest "[...]" whose inside has no '\n' ('.' does not
// match a newline without re.DOTALL).
std::string remove_bracket_tags(const std::string& s);

// HellaSwag's preprocess (harness lm_eval/tasks/hellaswag/utils.py), in order: strip; " [title]" -> ". ";
// remove bracket tags; "  " -> " " (one pass).
std::string hellaswag_preprocess(const std::string& text);

}  // namespace gqe::eval
