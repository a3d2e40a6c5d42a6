#include "gqe/core/format.h"

#include <gtest/gtest.h>

namespace gqe {
namespace {

TEST(Format, HumanNumberUsesSiSuffixes) {
  EXPECT_EQ(human_number(950), "950");
  EXPECT_EQ(human_number(12345), "12.3k");
  EXPECT_EQ(human_number(767000), "767.0k");
  EXPECT_EQ(human_number(4.5e6), "4.50M");
  EXPECT_EQ(human_number(7.1e9), "7.10G");
}

TEST(Format, FixedPointRounds) {
  EXPECT_EQ(fixed_point(1.23456), "1.23");
  EXPECT_EQ(fixed_point(1.5, 0), "2");
  EXPECT_EQ(fixed_point(-0.25, 1), "-0.2");
}

TEST(Format, OrListJoinsAsASentence) {
  EXPECT_EQ(or_list({}), "");
  EXPECT_EQ(or_list({"a"}), "a");
  EXPECT_EQ(or_list({"a", "b"}), "a or b");
  EXPECT_EQ(or_list({"a", "b", "c"}), "a, b or c");
}

}  // namespace
}  // namespace gqe
