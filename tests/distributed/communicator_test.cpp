// Data parallel over Gloo on 127.0.0.1, with real processes of the gqe binary (GQE_BIN):
// 2 ranks give the loss curve of 1 process with the same global batch and seed, and a rank that dies
// makes the other exit with a clear message instead of hanging.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "gqe/core/error.h"
#include "gqe/distributed/communicator.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {

namespace {

using test::free_port;
using test::rank_env;
using test::slurp;
using test::spawn;
using test::wait_for;

std::vector<nlohmann::json> train_records(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") out.push_back(j);
  }
  return out;
}

struct RunSetup {
  std::string dir, bin, config, data;
};

RunSetup make_setup(const std::string& name) {
  RunSetup s;
  const char* bin = std::getenv("GQE_BIN");
  if (!bin || access(bin, X_OK) != 0) return s;
  s.bin = bin;
  s.dir = test::scratch_dir(name);
  s.data = s.dir + "/text.txt";
  std::ofstream f(s.data);
  for (int i = 0; i < 300; ++i) f << "And God said, Let there be light: and there was light. " << i << "\n";
  auto cfg = test::small_config("gqe", 4, 2);
  cfg.vocab_size = 256;
  s.config = s.dir + "/model.json";
  std::ofstream(s.config) << model_config_to_json(cfg);
  return s;
}

std::vector<std::string> train_args(const RunSetup& s, const std::string& out, const std::string& steps) {
  return {s.bin, "train", "--config", s.config, "--data", s.data, "--out", s.dir + "/" + out, "--steps", steps,
          "--batch", "2", "--seq", "16", "--global-batch", "64", "--threads", "1", "--sample-tokens", "0",
          "--eval-every", "0", "--seed", "5", "--lr", "1e-2", "--dist-timeout", "60"};
}

}  // namespace

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
  setenv("MASTER_PORT", "http", 1);
  EXPECT_THROW(dist_env_from_environment(), Error);
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(v);
  EXPECT_EQ(dist_env_from_environment().world_size, 1);
}

TEST(Dist, TwoGlooRanksMatchOneProcess) {
  RunSetup s = make_setup("dist_equal");
  if (s.bin.empty()) GTEST_SKIP() << "GQE_BIN not set to the gqe executable";
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
  RunSetup s = make_setup("dist_dead");
  if (s.bin.empty()) GTEST_SKIP() << "GQE_BIN not set to the gqe executable";
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
