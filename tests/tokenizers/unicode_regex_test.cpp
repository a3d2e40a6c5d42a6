// Which Unicode the pre-tokenizer regexes follow: PCRE2's tables, pinned here. Hugging Face tokenizers
// follows a newer Unicode, so a text with letters added since splits differently (docs/data.md). When
// PCRE2 is upgraded these expectations fail on purpose: update them and docs/data.md together.
#include "gqe/tokenizers/unicode_regex.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gqe/tokenizers/bpe_tokenizer.h"

namespace gqe {
namespace {

// The pieces GPT-2's pre-tokenizer regex cuts `text` into.
std::vector<std::string> gpt2_pieces(const std::string& text) {
  const UnicodeRegex re(kGpt2PretokenizerRegex, "GPT-2 regex");
  std::vector<std::string> out;
  size_t pos = 0, begin = 0, end = 0;
  while (pos < text.size() && re.find(text.data(), text.size(), pos, &begin, &end)) {
    out.push_back(text.substr(begin, end - begin));
    pos = end > begin ? end : begin + 1;
  }
  return out;
}

const std::string kVithkuqiA = "\xF0\x90\x95\xB0";     // U+10570 VITHKUQI CAPITAL LETTER A, Unicode 14.0 (Lu)
const std::string kKawiA = "\xF0\x91\xBC\x84";         // U+11F04 KAWI LETTER A, Unicode 15.0 (Lo)
const std::string kCyrillicModA = "\xF0\x9E\x80\xB0";  // U+1E030 MODIFIER LETTER CYRILLIC SMALL A, Unicode 15.0 (Lm)

TEST(UnicodeRegex, PcreVersionAndItsUnicodeTablesArePinned) {
  const RegexLibrary lib = regex_library();
  EXPECT_EQ(lib.header_version, "10.42") << "pcre2.h changed: check the Unicode version below and docs/data.md";
  EXPECT_EQ(lib.version.substr(0, 6), "10.42 ") << lib.version;
  EXPECT_EQ(lib.unicode_version, "14.0.0") << "PCRE2's Unicode tables changed: update docs/data.md and this test";
}

TEST(UnicodeRegex, LettersOfUnicode14AreLettersThoseOfUnicode15AreNot) {
  const UnicodeRegex letter("^\\p{L}$", "test");
  size_t b = 0, e = 0;
  EXPECT_TRUE(letter.find(kVithkuqiA.data(), kVithkuqiA.size(), 0, &b, &e));
  EXPECT_TRUE(letter.find("a", 1, 0, &b, &e));
  // Unassigned in Unicode 14: neither letter, number nor space. HF tokenizers (newer Unicode) sees letters.
  EXPECT_FALSE(letter.find(kKawiA.data(), kKawiA.size(), 0, &b, &e));
  EXPECT_FALSE(letter.find(kCyrillicModA.data(), kCyrillicModA.size(), 0, &b, &e));

  // So GPT-2's pre-tokenizer keeps a word with a Unicode 14 letter whole, and cuts one with a Unicode 15
  // letter into three pieces (` ?\p{L}+`, then ` ?[^\s\p{L}\p{N}]+`), where HF tokenizers keeps it whole.
  EXPECT_EQ(gpt2_pieces(" a" + kVithkuqiA + "b"), std::vector<std::string>{" a" + kVithkuqiA + "b"});
  EXPECT_EQ(gpt2_pieces(" a" + kKawiA + "b"), (std::vector<std::string>{" a", kKawiA, "b"}));
  EXPECT_EQ(gpt2_pieces(" a" + kCyrillicModA + "b"), (std::vector<std::string>{" a", kCyrillicModA, "b"}));
}

}  // namespace
}  // namespace gqe
