#include "gqe/tokenizers/unicode_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <time.h>

#include <cstdio>
#include <memory>

#include "gqe/core/error.h"

namespace gqe {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// The calling thread's TextBudget.
struct BudgetState {
  bool active = false;
  double deadline = 0, seconds = 0;  // thread CPU time
  size_t text_bytes = 0;
  uint64_t callouts = 0;
  void start(size_t bytes) {
    active = true;
    text_bytes = bytes;
    seconds = TextBudget::kBaseSeconds + TextBudget::kSecondsPerByte * double(bytes);
    deadline = thread_cpu_seconds() + seconds;
    callouts = 0;
  }
};

BudgetState& budget_state() {
  thread_local BudgetState b;
  return b;
}

// Every pattern starts with callout 1, reached at each start position PCRE2 tries: the clock is read
// every 256th time (reading it costs about as much as a short match).
int budget_callout(pcre2_callout_block*, void*) {
  BudgetState& b = budget_state();
  if (!b.active || (++b.callouts & 255) != 0) return 0;
  return thread_cpu_seconds() > b.deadline ? PCRE2_ERROR_CALLOUT : 0;
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
    pcre2_set_callout(context, budget_callout, nullptr);
    // Backtracking within one match (PCRE2's interpreter, when JIT is unavailable, also bounds its memory
    // by depth and heap): far beyond what tokenizer patterns need, far below what hurts.
    pcre2_set_match_limit(context, 10'000'000);
    pcre2_set_depth_limit(context, 1'000'000);
    pcre2_set_heap_limit(context, 256 * 1024);  // KiB
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

RegexLibrary regex_library() {
  auto config = [](uint32_t what) {
    PCRE2_UCHAR buf[64] = {};
    return pcre2_config(what, buf) > 0 ? std::string(reinterpret_cast<const char*>(buf)) : std::string("unknown");
  };
  return {config(PCRE2_CONFIG_VERSION), std::to_string(PCRE2_MAJOR) + "." + std::to_string(PCRE2_MINOR),
          config(PCRE2_CONFIG_UNICODE_VERSION)};
}

TextBudget::TextBudget(size_t text_bytes) {
  BudgetState& b = budget_state();
  if (b.active) return;
  b.start(text_bytes);
  outer_ = true;
}

TextBudget::~TextBudget() {
  if (outer_) budget_state().active = false;
}

bool TextBudget::spent() {
  const BudgetState& b = budget_state();
  return b.active && thread_cpu_seconds() > b.deadline;
}

std::string TextBudget::describe() {
  const BudgetState& b = budget_state();
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", b.seconds);
  return std::string("more than ") + secs + " s of CPU time on a text of " + std::to_string(b.text_bytes) + " bytes";
}

// A regular expression starts with callout 1 (budget_callout); a literal needs none (PCRE2 finds it in
// linear time).
constexpr const char* kCalloutPrefix = "(?C1)";
constexpr size_t kCalloutPrefixLength = 5;

UnicodeRegex::UnicodeRegex(const std::string& pattern, const std::string& source, bool literal)
    : pattern_(pattern), source_(source) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // Start-of-pattern verbs such as (*LIMIT_MATCH=...) or (*NO_JIT) must come first, before the callout;
  // Hugging Face tokenizers' Oniguruma has none of them either.
  if (!literal && pattern.compare(0, 2, "(*") == 0)
    throw Error(source + ": regex starts with a PCRE2 verb '(*...)', which is not supported (pattern " + pattern + ")");
  const std::string compiled = literal ? pattern : kCalloutPrefix + pattern;
  // UTF + UCP: \s, \w, \d and case folding follow Unicode, as in the Oniguruma engine Hugging Face
  // tokenizers use. MATCH_INVALID_UTF: arbitrary bytes are a valid subject (they simply never match).
  uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  options |= literal ? PCRE2_LITERAL : PCRE2_UCP;  // PCRE2 refuses UCP with LITERAL (it has no classes)
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(), options, &err,
                                   &offset, nullptr);
  if (!code) {
    if (!literal) offset = offset >= kCalloutPrefixLength ? offset - kCalloutPrefixLength : 0;
    throw Error(source + ": regex does not compile at offset " + std::to_string(offset) + ": " + pcre2_message(err) +
                " (pattern " + pattern + ")");
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // without JIT support PCRE2 interprets: slower, same result
}

UnicodeRegex::~UnicodeRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool UnicodeRegex::find(const char* subject, size_t n, size_t start, size_t* begin, size_t* end) const {
  MatchState& st = match_state();
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject);
  TextBudget budget(n);  // no-op inside a caller's budget for the whole text
  const int rc = jit_ ? pcre2_jit_match(code, s, n, start, 0, st.data, st.context)
                      : pcre2_match(code, s, n, start, 0, st.data, st.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc == PCRE2_ERROR_CALLOUT)
    throw Error(source_ + ": regex needs too much work: " + TextBudget::describe() +
                ": the pattern rescans or backtracks over the text from every position (pattern " + pattern_ + ")");
  if (rc < 0)
    throw Error(source_ + ": regex match failed: " + pcre2_message(rc) + " (pattern " + pattern_ + ")");
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
  *begin = ov[0];
  *end = ov[1];
  return true;
}

}  // namespace gqe
