#include "gqe/data/unicode_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "gqe/core/error.h"

namespace gqe {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread match state: match data and a JIT stack are not shareable between concurrent matches.
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    // The default 32 KiB JIT stack is enough for these patterns; a larger cap only costs address space
    // and keeps a pathological input an error message rather than a silent fallback.
    jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (!data || !context || !jit_stack) throw Error("regex: out of memory creating PCRE2 match data");
    pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchState& match_state() {
  thread_local MatchState s;
  return s;
}

}  // namespace

UnicodeRegex::UnicodeRegex(const std::string& pattern, const std::string& source, bool literal)
    : pattern_(pattern), source_(source) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // UTF + UCP: \s, \w, \d and case folding follow Unicode, as in the Oniguruma engine Hugging Face
  // tokenizers use. MATCH_INVALID_UTF: arbitrary bytes are a valid subject (they simply never match).
  uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  options |= literal ? PCRE2_LITERAL : PCRE2_UCP;  // PCRE2 refuses UCP with LITERAL (it has no classes)
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err,
                                   &offset, nullptr);
  if (!code)
    throw Error(source + ": regex does not compile at offset " + std::to_string(offset) + ": " + pcre2_message(err) +
                " (pattern " + pattern + ")");
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // without JIT support PCRE2 interprets: slower, same result
}

UnicodeRegex::~UnicodeRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool UnicodeRegex::find(const char* subject, size_t n, size_t start, size_t* begin, size_t* end) const {
  MatchState& st = match_state();
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject);
  const int rc = jit_ ? pcre2_jit_match(code, s, n, start, 0, st.data, st.context)
                      : pcre2_match(code, s, n, start, 0, st.data, st.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0)
    throw Error(source_ + ": regex match failed: " + pcre2_message(rc) + " (pattern " + pattern_ + ")");
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
  *begin = ov[0];
  *end = ov[1];
  return true;
}

}  // namespace gqe
