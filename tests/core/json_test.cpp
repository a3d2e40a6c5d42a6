#include "gqe/core/json.h"

#include <gtest/gtest.h>

#include <string>

namespace gqe {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_json(text, "x.json");
  } catch (const JsonError& e) {
    return e.what();
  }
  return "";
}

TEST(ParseJson, ParsesOrdinaryValues) {
  EXPECT_EQ(parse_json(R"({"a": [1, 2, {"b": null}]})", "x.json")["a"][1], 2);
  EXPECT_EQ(parse_json("3.5", "x.json"), 3.5);
}

TEST(ParseJson, RefusesDeepNestingWithoutCrashing) {
  const int n = 100000;
  const std::string deep = std::string(n, '[') + std::string(n, ']');
  const std::string e = error_of(deep);
  EXPECT_NE(e.find("x.json"), std::string::npos) << e;
  EXPECT_NE(e.find("nested deeper than"), std::string::npos) << e;
  // At the cap itself the value is fine.
  EXPECT_NO_THROW(parse_json(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']'), "x.json"));
}

TEST(ParseJson, ErrorsAreShortAndNameTheSource) {
  const std::string huge = "{\"a\": \"" + std::string(1 << 20, 'z');  // unterminated string, 1 MiB
  const std::string e = error_of(huge);
  EXPECT_EQ(e.rfind("x.json: not valid JSON: ", 0), 0u) << e;
  EXPECT_LT(e.size(), 400u);
}

TEST(ParseJson, NamesANulByte) {
  const std::string e = error_of(std::string("{\"a\": 1\0}", 9));
  EXPECT_NE(e.find("NUL byte at byte offset 7"), std::string::npos) << e;
}

TEST(ParseJson, ANumberBeyondTheDoubleRangeNamesItsField) {
  // nlohmann reports 1e999 as out_of_range (not a parse error): it used to escape as an internal error.
  std::string e = error_of(R"({"a": 1, "attention": {"kind": "gqe", "rope_theta": 1e999}})");
  EXPECT_EQ(e, "x.json: field 'attention.rope_theta': the number 1e999 is out of range (beyond the largest double)");
  e = error_of(R"({"a": {"b": 1}, "c": -1e400})");
  EXPECT_NE(e.find("field 'c'"), std::string::npos) << e;
  EXPECT_NE(error_of("[1e999]").find("x.json: the number 1e999 is out of range"), std::string::npos);
  // (also found by fuzz/config_fuzz); a huge number token stays a short message
  EXPECT_LT(error_of("[1" + std::string(1 << 20, '0') + "e999]").size(), 400u);

}

TEST(TruncateForMessage, CutsLongText) {
  EXPECT_EQ(truncate_for_message("abc", 5), "abc");
  EXPECT_EQ(truncate_for_message("abcdefgh", 3), "abc... (8 characters)");
}

}  // namespace
}  // namespace gqe
