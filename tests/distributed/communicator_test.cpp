// Data parallel over Gloo on 127.0.0.1, with real processes of the gqe binary (GQE_BIN):
// 2 ranks give the loss curve of 1 process with the same global batch and seed, and a rank that dies
// makes the other exit with a clear message instead of hanging.
#include <gtest/gtest.h>

#include <cmath>

#include "distributed/dist_test_util.h"
#include "gqe/core/error.h"
#include "gqe/distributed/communicator.h"

namespace gqe {

using namespace disttest;

TEST(Dist, EnvironmentParsing) {
  setenv("WORLD_SIZE", "2", 1);
  setenv("RANK", "2", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", "1234", 1);
  EXPECT_THROW(dist_env_from_environment(), Error);  // RANK >= WORLD_SIZE
  setenv("RANK", "1", 1);
  DistEnv e = dist_env_from_environment();
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 2);
  EXPECT_EQ(e.master_port, 1234);
  EXPECT_EQ(e.run_id, "");  // the caller derives one (run_id_for_output)
  setenv("GQE_RUN_ID", "job-7", 1);
  EXPECT_EQ(dist_env_from_environment().run_id, "job-7");
  setenv("GQE_RUN_ID", "a/b", 1);
  EXPECT_THROW(dist_env_from_environment(), Error);  // '/' would nest store keys
  unsetenv("GQE_RUN_ID");
  setenv("MASTER_PORT", "http", 1);
  EXPECT_THROW(dist_env_from_environment(), Error);
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(v);
  // The default run id: the same for every spelling of one output folder, different for another.
  EXPECT_EQ(run_id_for_output("/tmp/run-a"), run_id_for_output("/tmp/x/../run-a/"));
  EXPECT_NE(run_id_for_output("/tmp/run-a"), run_id_for_output("/tmp/run-b"));
  EXPECT_EQ(dist_env_from_environment().world_size, 1);
}

TEST(Dist, TwoGlooRanksMatchOneProcess) {
  GQE_SKIP_WITHOUT_BIN();
  RunSetup s = make_setup("dist_equal");
  // One process: micro-batch 2, accumulation 2 (64 tokens per step).
  pid_t one = spawn(train_args(s, "one", "5"), {}, s.dir + "/one.log");
  ASSERT_EQ(wait_for(one, 120), 0) << slurp(s.dir + "/one.log");
  // Two ranks: micro-batch 2 each, no accumulation: the same 4 sequences per step.
  const int port = free_port();
  pid_t r0 = spawn(train_args(s, "two", "5"), rank_env(0, 2, port), s.dir + "/two0.log");
  pid_t r1 = spawn(train_args(s, "two", "5"), rank_env(1, 2, port), s.dir + "/two1.log");
  const int rc0 = wait_for(r0, 120), rc1 = wait_for(r1, 120);
  ASSERT_EQ(rc0, 0) << slurp(s.dir + "/two0.log");
  ASSERT_EQ(rc1, 0) << slurp(s.dir + "/two1.log");
  auto a = train_records(s.dir + "/one/metrics.jsonl"), b = train_records(s.dir + "/two/metrics.jsonl");
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 5u);
  for (size_t i = 0; i < a.size(); ++i) {
    const double la = a[i]["loss"], lb = b[i]["loss"], ga = a[i]["grad_norm"], gb = b[i]["grad_norm"];
    EXPECT_NEAR(la, lb, 2e-5 * std::abs(la)) << "step " << i + 1;
    EXPECT_NEAR(ga, gb, 1e-3 * std::abs(ga)) << "step " << i + 1;
    // Same weights at step 1, so the same routing; later an argmax may flip on a last-bit difference.
    if (i == 0) EXPECT_EQ(a[i]["router_load"].dump(), b[i]["router_load"].dump());
  }
  EXPECT_EQ(slurp(s.dir + "/two1.log").find("step "), std::string::npos);  // only rank 0 logs
}

TEST(Dist, DeadRankStopsTheOthersWithAClearMessage) {
  GQE_SKIP_WITHOUT_BIN();
  RunSetup s = make_setup("dist_dead");
  const int port = free_port();
  auto args = train_args(s, "run", "100000");
  pid_t r0 = spawn(args, rank_env(0, 2, port), s.dir + "/r0.log");
  pid_t r1 = spawn(args, rank_env(1, 2, port), s.dir + "/r1.log");
  const std::string metrics = s.dir + "/run/metrics.jsonl";
  for (int i = 0; i < 1200 && train_records(metrics).size() < 2; ++i) usleep(50000);
  ASSERT_GE(train_records(metrics).size(), 2u) << slurp(s.dir + "/r0.log");
  kill(r1, SIGKILL);
  waitpid(r1, nullptr, 0);
  const int rc0 = wait_for(r0, 90);  // Gloo sees the closed connection long before the 60 s timeout
  EXPECT_NE(rc0, -1) << "rank 0 hung after rank 1 died";
  EXPECT_NE(rc0, 0);
  const std::string log0 = slurp(s.dir + "/r0.log");
  EXPECT_NE(log0.find("another rank has probably died"), std::string::npos) << log0;
}

}  // namespace gqe
