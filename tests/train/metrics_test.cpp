#include "gqe/train/metrics.h"

#include <gtest/gtest.h>

#include <fstream>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "test_util.h"

namespace gqe {
namespace {

std::string train_record(int64_t step) {
  return R"({"type":"train","step":)" + std::to_string(step) + R"(,"loss":1.5})";
}

TEST(MetricsLog, ResumeDropsATornLastLineAndRecordsPastTheResumedStep) {
  const std::string dir = test::scratch_dir("metrics_repair");
  const std::string path = dir + "/metrics.jsonl";
  // A run checkpointed at step 2, went on to step 3 (and validated), and was killed writing step 4.
  std::ofstream(path) << train_record(1) << "\n"
                      << train_record(2) << "\n"
                      << R"({"type":"val","step":2,"val_loss":1.4})" << "\n"
                      << train_record(3) << "\n"
                      << R"({"type":"val","step":3,"val_loss":1.3})" << "\n"
                      << R"({"type":"train","step":4,"lo)";
  MetricsLog log;
  const MetricsRepair r = log.open(path, int64_t(2));
  EXPECT_TRUE(r.torn_last_line);
  EXPECT_EQ(r.dropped_records, 2);
  log.write(nlohmann::json::parse(train_record(3)));
  EXPECT_EQ(fs::read_file(path), train_record(1) + "\n" + train_record(2) + "\n" +
                                     R"({"type":"val","step":2,"val_loss":1.4})" + "\n" +
                                     nlohmann::json::parse(train_record(3)).dump() + "\n");
}

TEST(MetricsLog, AnIntactLogIsLeftAloneAndANewRunStartsOver) {
  const std::string dir = test::scratch_dir("metrics_intact");
  const std::string path = dir + "/metrics.jsonl";
  std::ofstream(path) << train_record(1) << "\n" << train_record(2) << "\n";
  {
    MetricsLog log;
    const MetricsRepair r = log.open(path, int64_t(2));
    EXPECT_FALSE(r.torn_last_line);
    EXPECT_EQ(r.dropped_records, 0);
  }
  EXPECT_EQ(fs::read_file(path), train_record(1) + "\n" + train_record(2) + "\n");
  {
    MetricsLog log;
    log.open(path, std::nullopt);
  }
  EXPECT_EQ(fs::read_file(path), "");
}

TEST(MetricsLog, DamageBeforeTheLastLineIsAnErrorNamingTheLine) {
  const std::string dir = test::scratch_dir("metrics_damaged");
  const std::string path = dir + "/metrics.jsonl";
  std::ofstream(path) << train_record(1) << "\n{\"type\":\"tr\n" << train_record(2) << "\n";
  MetricsLog log;
  try {
    log.open(path, int64_t(2));
    FAIL() << "accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": line 2: not valid JSON"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::read_file(path), train_record(1) + "\n{\"type\":\"tr\n" + train_record(2) + "\n");  // untouched
}

}  // namespace
}  // namespace gqe
