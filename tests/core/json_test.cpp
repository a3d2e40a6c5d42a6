#include "gqe/core/json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
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

std::string field_error_of(const std::function<void()>& read) {
  try {
    read();
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(JsonInteger, ReadsIntegersWithinTheirRange) {
  const auto j = parse_json(R"({"a": 7, "b": -3, "c": 18446744073709551615, "d": 9223372036854775807})", "s.json");
  EXPECT_EQ(json_integer<int64_t>(j, "a", "s.json"), 7);
  EXPECT_EQ(json_integer<int64_t>(j, "b", "s.json"), -3);
  EXPECT_EQ(json_integer<uint64_t>(j, "c", "s.json"), UINT64_MAX);
  EXPECT_EQ(json_integer<int64_t>(j, "d", "s.json"), INT64_MAX);
  EXPECT_EQ(json_integer<int>(j, "a", "s.json", "", 1, 7), 7);
}

TEST(JsonInteger, RefusesFloatsOutOfRangeValuesAndOtherKinds) {
  // 1.8e19 is the value whose conversion to an integer was undefined behaviour (a fuzzing finding).
  const auto j = parse_json(
      R"({"big": 1.84467e19, "half": 2.5, "whole": 3.0, "wide": 18446744073709551615, "neg": -1, "s": "7"})",
      "s.json");
  EXPECT_EQ(field_error_of([&] { json_integer<uint64_t>(j, "big", "s.json"); }),
            "s.json: field 'big': expected an integer in [0, 18446744073709551615], got 1.84467e+19");
  EXPECT_NE(field_error_of([&] { json_integer<int64_t>(j, "half", "s.json"); }), "");
  EXPECT_NE(field_error_of([&] { json_integer<int64_t>(j, "whole", "s.json"); }), "");
  EXPECT_EQ(field_error_of([&] { json_integer<int64_t>(j, "wide", "s.json", "data."); }),
            "s.json: field 'data.wide': expected an integer in [-9223372036854775808, 9223372036854775807], got "
            "18446744073709551615");
  EXPECT_NE(field_error_of([&] { json_integer<uint64_t>(j, "neg", "s.json"); }), "");
  EXPECT_NE(field_error_of([&] { json_integer<int64_t>(j, "neg", "s.json", "", 0); }), "");
  EXPECT_NE(field_error_of([&] { json_integer<int64_t>(j, "s", "s.json"); }), "");
  EXPECT_EQ(field_error_of([&] { json_integer<int64_t>(j, "absent", "s.json"); }), "s.json: field 'absent': missing");
  EXPECT_NE(field_error_of([&] { json_integer<int64_t>(parse_json("[1]", "s.json"), "a", "s.json"); }), "");
}

TEST(JsonNumber, ReadsFiniteNumbersOnly) {
  const auto j = parse_json(R"({"x": 2.5, "i": 3, "s": "1"})", "s.json");
  EXPECT_EQ(json_number(j, "x", "s.json"), 2.5);
  EXPECT_EQ(json_number(j, "i", "s.json"), 3.0);
  EXPECT_EQ(field_error_of([&] { json_number(j, "s", "s.json", "zclip."); }),
            "s.json: field 'zclip.s': expected a finite number, got \"1\"");
}

TEST(TruncateForMessage, CutsLongText) {
  EXPECT_EQ(truncate_for_message("abc", 5), "abc");
  EXPECT_EQ(truncate_for_message("abcdefgh", 3), "abc... (8 characters)");
}

}  // namespace
}  // namespace gqe
