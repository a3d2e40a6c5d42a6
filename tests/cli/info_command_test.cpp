// `gqe info` through the executable (GQE_BIN): config values it cannot represent are errors naming the
// file and the field.
#include <gtest/gtest.h>

#include <fstream>

#include "test_util.h"

namespace gqe {
namespace {

TEST(CliInfo, OutOfRangeNumbersAndOverflowingSizesAreConfigErrors) {
  if (!test::gqe_bin_available()) GTEST_SKIP() << "GQE_BIN not set or not built";
  const std::string dir = test::scratch_dir("cli_info");
  const std::string attention = R"("attention": {"kind": "gqa", "num_attention_heads": 4, "num_key_value_heads": 2})";
  std::ofstream(dir + "/inf.json") << R"({"vocab_size": 256, "hidden_size": 64, "rope_theta": 1e999, )" << attention << "}";
  test::CommandRun r = test::run_gqe_command("info " + dir + "/inf.json");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(r.out, "gqe info: error: " + dir + "/inf.json: field 'rope_theta': the number 1e999 is out of range "
                   "(beyond the largest double)\n");
  std::ofstream(dir + "/big.json") << R"({"vocab_size": 4611686018427387904, "hidden_size": 1024, )" << attention << "}";
  r = test::run_gqe_command("info " + dir + "/big.json");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find(dir + "/big.json: sizes too large: the embedding parameter count vocab_size "
                       "(4611686018427387904) x hidden_size (1024) overflows int64"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("parameters:"), std::string::npos) << r.out;  // no (negative) counts printed
}

}  // namespace
}  // namespace gqe
