// A compiled Unicode regular expression (PCRE2, UTF-8 with Unicode properties, JIT-compiled): the
// pre-tokenization patterns of byte-level BPE tokenizers (GPT-2's `\s+(?!\S)` lookahead, LLaMA-3's
// `(?i:'s|...)`, `\p{L}`, `\p{N}{1,3}`) need lookaround and Unicode classes that std::regex lacks.
#pragma once
#include <cstddef>
#include <string>

namespace gqe {

// The matching work one text may cost, for patterns from files (a tokenizer's Split pattern, its added
// tokens): while one lives, every find() on this thread counts against a CPU-time budget proportional to
// the text's length, and past it find() throws instead of running on; other matchers ask spent(). PCRE2's own limits bound backtracking within one match,
// but not a lookahead that rescans the rest of the line from every start position (`\p{L}(?=\p{L}*\d)`):
// each match stays cheap for PCRE2's counters while the text costs quadratic time (minutes for 200 kB).
// Scopes nest: the outermost one (one whole text) decides. Without one, each find() gets its own budget.
class TextBudget {
 public:
  explicit TextBudget(size_t text_bytes);
  ~TextBudget();

  // True once the calling thread's budget is used up (false without one). Reads the clock: call it every
  // so often, not per byte.
  static bool spent();
  // "more than S s of CPU time on a text of N bytes", for the message of whoever found spent().
  static std::string describe();
  TextBudget(const TextBudget&) = delete;
  TextBudget& operator=(const TextBudget&) = delete;

  // Generous on purpose: the budget covers everything the thread does meanwhile (BPE merges included),
  // and ordinary tokenization runs at several MB/s (0.2 MB/s is the budget).
  static constexpr double kBaseSeconds = 0.5;
  static constexpr double kSecondsPerByte = 5e-6;

 private:
  bool outer_ = false;
};

// The PCRE2 library the patterns run in. Its Unicode tables decide what \p{L}, \p{N} and \s match, and they
// follow the Unicode version of the PCRE2 release (Debian 12's 10.42: Unicode 14.0.0), while Hugging Face
// tokenizers' Oniguruma follows a newer one: a letter added to Unicode since (U+11F04 KAWI LETTER A, Unicode
// 15.0) is no letter here, and text containing it is split differently (docs/data.md).
struct RegexLibrary {
  std::string version;          // at run time, "10.42 2022-12-11"
  std::string header_version;   // of the pcre2.h gqe was compiled with, "10.42"
  std::string unicode_version;  // of the run-time library's tables, "14.0.0"
};
RegexLibrary regex_library();

class UnicodeRegex {
 public:
  // Throws gqe::Error naming `source` (where the pattern came from), PCRE2's message and the offset.
  // literal: the pattern is a plain string to find, not a regular expression.
  UnicodeRegex(const std::string& pattern, const std::string& source, bool literal = false);
  ~UnicodeRegex();
  UnicodeRegex(const UnicodeRegex&) = delete;
  UnicodeRegex& operator=(const UnicodeRegex&) = delete;

  // The first match starting at or after byte `start` of subject[0, n): true and [*begin, *end), or false.
  // Bytes that are not valid UTF-8 never match (they are left between matches). Thread-safe. Throws
  // gqe::Error naming the source when the match needs too much work (see TextBudget).
  bool find(const char* subject, size_t n, size_t start, size_t* begin, size_t* end) const;

  const std::string& pattern() const { return pattern_; }

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  std::string pattern_, source_;
  bool jit_ = false;
};

}  // namespace gqe
