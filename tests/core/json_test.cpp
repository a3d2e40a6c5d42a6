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

// Found by fuzz/config_fuzz: the library reports a number beyond double range as out_of_range, which
// escaped parse_json as an internal error.
TEST(ParseJson, NumberBeyondDoubleRangeIsAJsonError) {
  const std::string e = error_of(R"({"rope_theta": 1e999})");
  EXPECT_EQ(e.rfind("x.json: not valid JSON for gqe: ", 0), 0u) << e;
  EXPECT_NE(e.find("1e999"), std::string::npos) << e;
  EXPECT_LT(error_of("[1" + std::string(1 << 20, '0') + "e999]").size(), 400u);
}

TEST(TruncateForMessage, CutsLongText) {
  EXPECT_EQ(truncate_for_message("abc", 5), "abc");
  EXPECT_EQ(truncate_for_message("abcdefgh", 3), "abc... (8 characters)");
}

}  // namespace
}  // namespace gqe
