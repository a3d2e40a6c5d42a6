// gqe plot (through the gqe binary, GQE_BIN): a PNG from metrics logs, and clear errors on bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "gqe/core/fs.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {

TEST(Plot, WritesAPngFromMetricsAndRejectsGarbage) {
  GQE_SKIP_WITHOUT_BIN();
  if (!test::have_program("gnuplot")) GTEST_SKIP() << "gnuplot not installed";
  const std::string dir = test::scratch_dir("plot");
  {
    std::ofstream f(dir + "/metrics.jsonl");
    for (int s = 1; s <= 20; ++s) {
      f << R"({"type":"train","step":)" << s << R"(,"loss":)" << 5.0 / s << R"(,"lr":0.001,"grad_norm":)"
        << 1.0 + (s == 7) << R"(,"clipped":)" << (s == 7 ? "true" : "false") << R"(,"tokens":)" << s * 100 << "}\n";
      if (s % 10 == 0) f << R"({"type":"val","step":)" << s << R"(,"val_loss":)" << 5.5 / s << "}\n";
    }
  }
  ASSERT_TRUE(test::exited(
      test::run_gqe({"plot", dir, dir + "/metrics.jsonl", "--labels", "a,b", "--out", dir + "/c.png"}), 0));
  std::ifstream png(dir + "/c.png", std::ios::binary);
  char magic[8] = {};
  png.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  std::ofstream(dir + "/bad.jsonl") << "{\"type\":\"train\",\"step\":1,\"loss\":2}\nnot json\n{\"type\":\"train\",\"step\":2}\n";
  const test::CommandRun bad = test::run_gqe({"plot", dir + "/bad.jsonl", "--out", dir + "/d.png"});
  EXPECT_NE(bad.rc, 0) << bad.out;
  EXPECT_NE(bad.out.find("line 2 is not JSON"), std::string::npos) << bad.out;
  EXPECT_NE(access((dir + "/d.png").c_str(), F_OK), 0);
}

// A run killed while writing a record leaves its last line cut short: the plot skips it.
TEST(Plot, ToleratesATornLastLine) {
  GQE_SKIP_WITHOUT_BIN();
  if (!test::have_program("gnuplot")) GTEST_SKIP() << "gnuplot not installed";
  const std::string dir = test::scratch_dir("plot_torn");
  {
    std::ofstream f(dir + "/metrics.jsonl");
    for (int s = 1; s <= 5; ++s)
      f << R"({"type":"train","step":)" << s << R"(,"loss":)" << 5.0 / s << R"(,"lr":0.001,"grad_norm":1,"tokens":)"
        << s * 100 << "}\n";
    f << R"({"type":"train","step":6,"loss":0.8)";
  }
  EXPECT_TRUE(test::exited(test::run_gqe({"plot", dir, "--out", dir + "/c.png"}), 0));
  EXPECT_TRUE(fs::exists(dir + "/c.png"));
}

}  // namespace gqe
