// Data-parallel start-up with real gqe ranks on 127.0.0.1 (GQE_BIN): ranks that disagree on the job are
// refused with the field and ranks named, another gqe job's store is never joined, and every wait ends
// within --dist-timeout, also behind a listener on MASTER_PORT that is not a c10d store.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <chrono>

#include "distributed/dist_test_util.h"
#include "gqe/core/fs.h"

namespace gqe {

using namespace disttest;

namespace {

std::vector<std::string> with(std::vector<std::string> args, const std::string& flag, const std::string& value) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag) {
      args[i + 1] = value;
      return args;
    }
  args.push_back(flag);
  args.push_back(value);
  return args;
}

// Seconds since `t0`.
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A TCP listener on 127.0.0.1:port that is not a c10d store: the kernel completes connections into its
// backlog, and nothing ever answers.
struct SilentListener {
  int fd = -1;
  explicit SilentListener(int port) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port));
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 16) != 0) {
      close(fd);
      fd = -1;
    }
  }
  ~SilentListener() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

TEST(Rendezvous, RanksThatDisagreeOnTheJobAreRefusedNamingFieldAndRanks) {
  GQE_SKIP_WITHOUT_BIN();
  RunSetup s = make_setup("dist_mismatch");
  auto cfg = test::small_config("gqe", 4, 2);
  cfg.vocab_size = 256;
  cfg.intermediate_size = 48;
  std::ofstream(s.dir + "/model48.json") << model_config_to_json(cfg);
  const auto base = train_args(s, "run", "5");
  struct Case {
    std::string field;
    std::vector<std::string> rank1_args;
  };
  // A different --batch used to train to the end with exit 0; a different model or --steps to abort in Gloo.
  const std::vector<Case> cases = {{"recipe.micro_batch", with(base, "--batch", "1")},
                                   {"recipe.steps", with(base, "--steps", "6")},
                                   {"model.intermediate_size", with(base, "--config", s.dir + "/model48.json")}};
  for (const auto& c : cases) {
    const int port = free_port();
    pid_t r0 = spawn(base, rank_env(0, 2, port), s.dir + "/r0.log");
    pid_t r1 = spawn(c.rank1_args, rank_env(1, 2, port), s.dir + "/r1.log");
    const int rc0 = wait_for(r0, 90), rc1 = wait_for(r1, 90);
    for (const auto& [rc, log] : {std::pair{rc0, slurp(s.dir + "/r0.log")}, std::pair{rc1, slurp(s.dir + "/r1.log")}}) {
      EXPECT_EQ(rc, 1) << c.field << "\n" << log;
      EXPECT_NE(log.find("ranks disagree on " + c.field + ": "), std::string::npos) << log;
      EXPECT_NE(log.find(" on rank 0 but "), std::string::npos) << log;
      EXPECT_NE(log.find(" on rank 1 "), std::string::npos) << log;
      EXPECT_EQ(log.find("step "), std::string::npos) << "trained despite the mismatch\n" << log;
    }
  }
}

// Data of the same names and sizes is not the same data: the ranks compare its content (data.train_sha256).
TEST(Rendezvous, RanksWithOtherDataOfTheSameNameAndSizeAreRefused) {
  GQE_SKIP_WITHOUT_BIN();
  RunSetup s = make_setup("dist_data");
  std::string other = slurp(s.data);
  other[other.find("light")] = 'n';  // "night": one byte differs
  fs::mkdirs(s.dir + "/other");
  std::ofstream(s.dir + "/other/text.txt", std::ios::binary) << other;
  const auto base = train_args(s, "run", "5");
  const int port = free_port();
  pid_t r0 = spawn(base, rank_env(0, 2, port), s.dir + "/r0.log");
  pid_t r1 = spawn(with(base, "--data", s.dir + "/other/text.txt"), rank_env(1, 2, port), s.dir + "/r1.log");
  const int rc0 = wait_for(r0, 90), rc1 = wait_for(r1, 90);
  for (const auto& [rc, log] : {std::pair{rc0, slurp(s.dir + "/r0.log")}, std::pair{rc1, slurp(s.dir + "/r1.log")}}) {
    EXPECT_EQ(rc, 1) << log;
    EXPECT_NE(log.find("ranks disagree on data.train_sha256: "), std::string::npos) << log;
    EXPECT_NE(log.find(" on rank 1 "), std::string::npos) << log;
    EXPECT_EQ(log.find("step "), std::string::npos) << "trained on different data\n" << log;
  }
}

TEST(Rendezvous, WorldSizeMismatchIsNamedAsSuch) {
  GQE_SKIP_WITHOUT_BIN();
  RunSetup s = make_setup("dist_world");
  // 192 tokens per step divide into 2 and into 3 ranks of 2 x 16, so both recipes resolve.
  const auto args = with(train_args(s, "run", "5"), "--global-batch", "192");
  const int port = free_port();
  pid_t r0 = spawn(args, rank_env(0, 2, port), s.dir + "/r0.log");
  pid_t r1 = spawn(args, rank_env(1, 3, port), s.dir + "/r1.log");
  const int rc0 = wait_for(r0, 90), rc1 = wait_for(r1, 90);
  for (const auto& [rc, log] : {std::pair{rc0, slurp(s.dir + "/r0.log")}, std::pair{rc1, slurp(s.dir + "/r1.log")}}) {
    EXPECT_EQ(rc, 1) << log;
    EXPECT_NE(log.find("WORLD_SIZE differs between ranks: WORLD_SIZE=2 on rank 0 but 3 on rank 1"), std::string::npos)
        << log;
  }
}

TEST(Rendezvous, AnotherJobsStoreIsNeverJoined) {
  GQE_SKIP_WITHOUT_BIN();
  RunSetup s = make_setup("dist_two_jobs");
  const int port = free_port();
  // Job A's rank 0 hosts the store and waits for its rank 1.
  pid_t a0 = spawn(train_args(s, "a", "3"), rank_env(0, 2, port), s.dir + "/a0.log");
  // Job B (another --out, so another run id) reaches A's store through the same MASTER_PORT.
  pid_t b1 = spawn(train_args(s, "b", "3"), rank_env(1, 2, port), s.dir + "/b1.log");
  const int rcb = wait_for(b1, 60);
  const std::string logb = slurp(s.dir + "/b1.log");
  EXPECT_EQ(rcb, 1) << logb;
  EXPECT_NE(logb.find("belongs to another gqe job"), std::string::npos) << logb;
  EXPECT_EQ(logb.find("step "), std::string::npos) << logb;
  // A is undisturbed: its own rank 1 joins and the run completes.
  pid_t a1 = spawn(train_args(s, "a", "3"), rank_env(1, 2, port), s.dir + "/a1.log");
  EXPECT_EQ(wait_for(a0, 90), 0) << slurp(s.dir + "/a0.log");
  EXPECT_EQ(wait_for(a1, 90), 0) << slurp(s.dir + "/a1.log");
  EXPECT_EQ(train_records(s.dir + "/a/metrics.jsonl").size(), 3u);
  EXPECT_FALSE(fs::exists(s.dir + "/b/metrics.jsonl"));
}

TEST(Rendezvous, ARankAloneStopsWithinTheTimeoutAndSaysHowLongItWaited) {
  GQE_SKIP_WITHOUT_BIN();
  RunSetup s = make_setup("dist_alone");
  const double timeout = 15;
  const auto args = with(train_args(s, "run", "5"), "--dist-timeout", "15");
  const auto t0 = std::chrono::steady_clock::now();
  pid_t r0 = spawn(args, rank_env(0, 2, free_port()), s.dir + "/r0.log");
  const int rc = wait_for(r0, 90);
  const double took = since(t0);
  const std::string log = slurp(s.dir + "/r0.log");
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("rank 1 did not join"), std::string::npos) << log;
  // The message states the real wait: "after 15.0 s (--dist-timeout 15.0 s)".
  const size_t at = log.find(", after ");
  ASSERT_NE(at, std::string::npos) << log;
  const double waited = std::stod(log.substr(at + 8));
  EXPECT_GE(waited, timeout - 0.5) << log;
  EXPECT_LE(waited, timeout + 1.5) << log;
  EXPECT_NE(log.find("(--dist-timeout 15.0 s)"), std::string::npos) << log;
  // Waiting for the workers and then again for the Gloo connection took twice the timeout (plus the few
  // seconds a gqe process needs to start).
  EXPECT_LT(took, 2 * timeout) << log;
}

TEST(Rendezvous, ANonStoreListenerOnMasterPortEndsTheRankWithinTheTimeout) {
  GQE_SKIP_WITHOUT_BIN();
  RunSetup s = make_setup("dist_foreign");
  const int port = free_port();
  SilentListener listener(port);
  ASSERT_GE(listener.fd, 0);
  const auto args = with(train_args(s, "run", "5"), "--dist-timeout", "4");
  // Rank 1 connects to the listener and waits for an answer that never comes; rank 0 cannot host there.
  const auto t0 = std::chrono::steady_clock::now();
  pid_t r1 = spawn(args, rank_env(1, 2, port), s.dir + "/r1.log");
  pid_t r0 = spawn(args, rank_env(0, 2, port), s.dir + "/r0.log");
  const int rc1 = wait_for(r1, 60), rc0 = wait_for(r0, 60);
  const double took = since(t0);
  const std::string log1 = slurp(s.dir + "/r1.log"), log0 = slurp(s.dir + "/r0.log");
  EXPECT_EQ(rc1, 1) << log1;
  EXPECT_NE(log1.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << log1;
  const size_t at = log1.find("after ");
  ASSERT_NE(at, std::string::npos) << log1;
  EXPECT_LE(std::stod(log1.substr(at + 6)), 4 + 1.5) << log1;  // the timeout and at most the watchdog's grace
  EXPECT_NE(log1.find("s (--dist-timeout 4.0 s)"), std::string::npos) << log1;
  EXPECT_LT(took, 30) << log1;  // and the few seconds two gqe processes need to start
  EXPECT_EQ(rc0, 1) << log0;
  EXPECT_NE(log0.find("cannot host the rendezvous store"), std::string::npos) << log0;
}

}  // namespace gqe
