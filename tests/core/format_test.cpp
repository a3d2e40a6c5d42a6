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

}  // namespace
}  // namespace gqe
