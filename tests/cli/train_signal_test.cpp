// `gqe train` stopped by a signal (a scheduler's time limit, a preemption, Ctrl-C) through the executable
// (GQE_BIN): the first SIGTERM or SIGINT finishes the step, checkpoints it on every rank's agreement and
// exits 128 + signal with a line naming --resume; resuming ends bit-exactly where an uninterrupted run
// ends. A second signal exits at once, the last checkpoint intact.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gqe/core/config.h"
#include "gqe/core/fs.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {
namespace {

constexpr int kTotalSteps = 400;  // far more than any run here trains: the schedule, not the length

class CliTrainSignal : public ::testing::Test {
 protected:
  void SetUp() override { GQE_SKIP_WITHOUT_BIN(); }

 public:  // for check_stop_and_resume
  std::string setup(const std::string& name) {
    dir_ = test::train_inputs_dir(name, 200, "And God said, Let there be light: and there was light. ");
    return dir_;
  }
  std::vector<std::string> args(const std::string& out, const std::vector<std::string>& extra) const {
    std::vector<std::string> a = {test::gqe_bin(), "train", "--config", dir_ + "/model.json", "--data",
                                  dir_ + "/text.txt", "--out", out, "--steps", std::to_string(kTotalSteps),
                                  "--batch", "2", "--seq", "16", "--threads", "1", "--sample-tokens", "0",
                                  "--eval-every", "0", "--eval-batches", "1", "--log-every", "1", "--seed", "5",
                                  "--lr", "1e-2", "--dist-timeout", "20"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // Starts `world` ranks (one plain process when world is 1); logs in PREFIX<rank>.log.
  std::vector<pid_t> start(int world, const std::string& out, const std::vector<std::string>& extra,
                           const std::string& prefix) const {
    const int port = test::free_port();
    std::vector<pid_t> pids;
    for (int r = 0; r < world; ++r)
      pids.push_back(test::spawn(args(out, extra),
                                 world > 1 ? test::rank_env(r, world, port)
                                           : std::vector<std::pair<std::string, std::string>>{},
                                 prefix + std::to_string(r) + ".log"));
    return pids;
  }
  std::string logs(const std::string& prefix, int world) const {
    std::string s;
    for (int r = 0; r < world; ++r)
      s += "--- rank " + std::to_string(r) + ":\n" + test::slurp(prefix + std::to_string(r) + ".log");
    return s;
  }
  // Runs the ranks to completion; every one must exit 0.
  void run_ok(int world, const std::string& out, const std::vector<std::string>& extra, const std::string& prefix) {
    const auto pids = start(world, out, extra, prefix);
    for (pid_t p : pids) ASSERT_EQ(test::wait_for(p, 120), 0) << logs(prefix, world);
  }
  std::string dir_;
};

// Step -> loss of the run's train records.
std::map<int64_t, double> losses(const std::string& metrics_path) {
  std::map<int64_t, double> out;
  std::ifstream f(metrics_path);
  std::string line;
  while (std::getline(f, line)) {
    const auto j = nlohmann::json::parse(line);  // a stopped run leaves no torn line
    if (j.value("type", "") == "train") out[j.at("step").get<int64_t>()] = j.at("loss").get<double>();
  }
  return out;
}

size_t train_records(const std::string& metrics_path) {
  const std::string s = test::slurp(metrics_path);
  size_t n = 0;
  for (size_t at = s.find("\"type\":\"train\""); at != std::string::npos; at = s.find("\"type\":\"train\"", at + 1)) ++n;
  return n;
}

std::string latest_checkpoint(const std::string& out) {
  std::string s = test::slurp(out + "/checkpoints/latest");
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", (long long)step);
  return buf;
}

// Waits until the run has logged `n` steps (rank 0 writes the metrics).
void wait_for_steps(const std::string& out, size_t n) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (train_records(out + "/metrics.jsonl") < n && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

// Signals rank `victim` (every rank when negative) of a `world`-rank run after a couple of steps; every rank must stop at the same
// step with a checkpoint of it, and a resume to a later step must equal an uninterrupted run to that step.
void check_stop_and_resume(CliTrainSignal& t, const std::string& name, int world, int sig, int victim) {
  const std::string dir = t.setup(name), out = dir + "/run", prefix = dir + "/stopped-rank";
  const auto pids = t.start(world, out, {}, prefix);
  wait_for_steps(out, 2);
  for (int r = 0; r < world; ++r)
    if (victim < 0 || r == victim) {
      ::kill(pids[r], sig);
      // Every rank signalled gets it twice at once, as from the terminal and from torchrun: one request.
      if (victim < 0) ::kill(pids[r], sig);
    }
  for (int r = 0; r < world; ++r) EXPECT_EQ(test::wait_for(pids[r], 60), 128 + sig) << t.logs(prefix, world);

  // It stopped at the step it logged last, and that step's checkpoint is there.
  const int64_t stopped = int64_t(train_records(out + "/metrics.jsonl"));
  ASSERT_GE(stopped, 2);
  ASSERT_LT(stopped, kTotalSteps) << "the run ended before the signal arrived";
  EXPECT_EQ(latest_checkpoint(out), step_name(stopped));
  const std::string sig_name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
  EXPECT_NE(test::slurp(prefix + "0.log")
                .find("gqe train: stopped by " + sig_name + " at step " + std::to_string(stopped) + " of " +
                      std::to_string(kTotalSteps) + ", checkpoint " + out + "/checkpoints/" + step_name(stopped) +
                      "; to continue, run the same command with --resume " + out + "\n"),
            std::string::npos)
      << t.logs(prefix, world);

  // Resumed to two steps later; the reference trains there in one go.
  const std::string until = std::to_string(stopped + 2), ref = dir + "/straight";
  t.run_ok(world, out, {"--stop-at", until, "--resume", out}, dir + "/resumed-rank");
  t.run_ok(world, ref, {"--stop-at", until}, dir + "/straight-rank");
  EXPECT_EQ(test::slurp(out + "/model.safetensors"), test::slurp(ref + "/model.safetensors"))
      << "the resumed run's weights differ from the uninterrupted run's";
  const std::string opt = "/checkpoints/" + step_name(stopped + 2) + "/optimizer.safetensors";
  EXPECT_EQ(test::slurp(out + opt), test::slurp(ref + opt)) << "optimizer states differ";
  const auto want = losses(ref + "/metrics.jsonl"), got = losses(out + "/metrics.jsonl");
  ASSERT_EQ(want.size(), size_t(stopped + 2));
  EXPECT_EQ(got, want);
}

TEST_F(CliTrainSignal, SigtermFinishesTheStepCheckpointsAndResumesBitExactly) {
  check_stop_and_resume(*this, "cli_train_sigterm", 1, SIGTERM, 0);
}

TEST_F(CliTrainSignal, SigintFinishesTheStepCheckpointsAndResumesBitExactly) {
  check_stop_and_resume(*this, "cli_train_sigint", 1, SIGINT, 0);
}

// The signal reaches one rank only (not the one that writes): the other learns of it in the same step.
TEST_F(CliTrainSignal, TwoGlooRanksStopAtTheSameStepWhicheverIsSignalled) {
  check_stop_and_resume(*this, "cli_train_sigterm_2ranks", 2, SIGTERM, 1);
}

// torchrun forwards a signal to every rank.
TEST_F(CliTrainSignal, TwoGlooRanksSignalledTogetherStopTogether) {
  check_stop_and_resume(*this, "cli_train_sigint_2ranks", 2, SIGINT, -1);
}

TEST_F(CliTrainSignal, ASecondSignalExitsAtOnceAndTheLastCheckpointStaysWhole) {
  const std::string dir = setup("cli_train_sigint_twice"), out = dir + "/run", prefix = dir + "/stopped-rank";
  // A checkpoint after every step, so that the second signal may well land in a checkpoint write.
  const auto pids = start(1, out, {"--save-every", "1", "--keep", "2"}, prefix);
  wait_for_steps(out, 2);
  ::kill(pids[0], SIGINT);
  // Frozen as soon as it has seen the first signal, and signalled again later than a repeat of the same
  // request would come (kSameStopSeconds): it must exit without finishing the step or the save.
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (test::slurp(prefix + "0.log").find("stopping after this step") == std::string::npos &&
         std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  ::kill(pids[0], SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  ::kill(pids[0], SIGINT);
  ::kill(pids[0], SIGCONT);
  EXPECT_EQ(test::wait_for(pids[0], 60), 128 + SIGINT);
  const std::string log = test::slurp(prefix + "0.log");
  EXPECT_NE(log.find("gqe train: stopping after this step and saving a checkpoint (signal again to exit at once)\n"),
            std::string::npos)
      << log;
  // The step and its checkpoint write (fsync) take far longer than the test's reply to the notice.
  EXPECT_EQ(log.find("stopped by"), std::string::npos) << log;
  const std::string latest = latest_checkpoint(out);
  ASSERT_FALSE(latest.empty()) << log;
  const int64_t at = std::stoll(latest.substr(5));
  // The last complete checkpoint resumes: to one step later, as the uninterrupted run.
  const std::string until = std::to_string(at + 1), ref = dir + "/straight";
  run_ok(1, out, {"--save-every", "1", "--keep", "2", "--stop-at", until, "--resume", "auto"}, dir + "/resumed-rank");
  run_ok(1, ref, {"--save-every", "1", "--keep", "2", "--stop-at", until}, dir + "/straight-rank");
  EXPECT_EQ(test::slurp(out + "/model.safetensors"), test::slurp(ref + "/model.safetensors"));
}

}  // namespace
}  // namespace gqe
