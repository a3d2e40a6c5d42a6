#include "gqe/tokenizers/spm_model.h"

#include <gtest/gtest.h>

#include "gqe/core/error.h"
#include "spm_crafted.h"

namespace gqe {
namespace {

TEST(SpmModel, DamagedFilesAreFormatErrorsNamingTheFile) {
  for (const std::string bytes : {std::string(""), std::string("\x0a\xff", 2), std::string("\x0a\x05\x0a\x01", 4),
                                  std::string("\x0f", 1)}) {
    try {
      parse_spm_model(bytes, "bad.model");
      ADD_FAILURE() << "accepted " << bytes.size() << " bytes";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("bad.model: not a SentencePiece model"), std::string::npos) << e.what();
    }
  }
}

TEST(SpmModel, PrecompiledCharsmapsAreCheckedBeforeSentencePieceSeesThem) {
  // Each of these crashes libsentencepiece 0.1.97 (or reads outside the model) when it normalizes text.
  using namespace test;
  EXPECT_TRUE(parse_spm_model(crafted_spm_model(valid_charsmap()), "ok.model").has_precompiled_charsmap);
  const std::string field = "bad.model: field 'normalizer_spec.precompiled_charsmap': ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {crashing_charsmap(), "trie node at unit 1073741568 reaches past the trie's 1 units"},
      {charsmap_blob(one_rule_trie(1000), std::string("b\0", 2)),
       "replacement offset 1000 is not a NUL-terminated string inside the 2 bytes of replacements"},
      {charsmap_blob(one_rule_trie(0), "bb"), "replacement offset 0 is not a NUL-terminated string"},
      {charsmap_blob(one_rule_trie(0, 0x61), std::string("b\0", 2)), "trie has a cycle through unit 256"},
      {le32(1000) + std::string(8, '\0'), "trie size 1000 exceeds the 8 bytes after it"},
      {le32(6) + std::string(8, '\0'), "trie size 6 is not a positive multiple of 4"},
      {std::string("\0\0", 2), "shorter than its 4-byte trie size"},
  };
  for (const auto& [charsmap, what] : cases) {
    try {
      parse_spm_model(crafted_spm_model(charsmap), "bad.model");
      ADD_FAILURE() << "accepted: " << what;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(field + what), std::string::npos) << e.what();
    }
  }
  // The denormalizer's charsmap is loaded by SentencePiece as well.
  const std::string denorm = crafted_spm_model(valid_charsmap()) + proto_bytes(5, proto_bytes(2, crashing_charsmap()));
  try {
    parse_spm_model(denorm, "bad.model");
    ADD_FAILURE() << "accepted a crashing denormalizer charsmap";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("field 'denormalizer_spec.precompiled_charsmap'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gqe
