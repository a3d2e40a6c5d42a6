// A compiled Unicode regular expression (PCRE2, UTF-8 with Unicode properties, JIT-compiled): the
// pre-tokenization patterns of byte-level BPE tokenizers (GPT-2's `\s+(?!\S)` lookahead, LLaMA-3's
// `(?i:'s|...)`, `\p{L}`, `\p{N}{1,3}`) need lookaround and Unicode classes that std::regex lacks.
#pragma once
#include <cstddef>
#include <string>

namespace gqe {

class UnicodeRegex {
 public:
  // Throws gqe::Error naming `source` (where the pattern came from), PCRE2's message and the offset.
  // literal: the pattern is a plain string to find, not a regular expression.
  UnicodeRegex(const std::string& pattern, const std::string& source, bool literal = false);
  ~UnicodeRegex();
  UnicodeRegex(const UnicodeRegex&) = delete;
  UnicodeRegex& operator=(const UnicodeRegex&) = delete;

  // The first match starting at or after byte `start` of subject[0, n): true and [*begin, *end), or false.
  // Bytes that are not valid UTF-8 never match (they are left between matches). Thread-safe.
  bool find(const char* subject, size_t n, size_t start, size_t* begin, size_t* end) const;

  const std::string& pattern() const { return pattern_; }

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  std::string pattern_, source_;
  bool jit_ = false;
};

}  // namespace gqe
