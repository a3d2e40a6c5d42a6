// Fault injection: `gqe train --resume auto` killed with SIGKILL again and again at random moments (and
// deliberately in the middle of checkpoint writes) must end bit-exactly where one uninterrupted run ends:
// the same model.safetensors and optimizer state bytes, the same loss at every step. For 1 process and
// for 2 Gloo ranks, with real processes of the gqe binary (GQE_BIN).
//
// The kill points come from a seeded generator and are printed, so a failure can be replayed:
// GQE_KILL_RESUME_SEED=S picks the seed (default 1), GQE_KILL_RESUME_ATTEMPTS=N the number of
// interrupted runs per world size (default 5).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gqe/core/config.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {

namespace {

constexpr int kSteps = 8;

uint64_t env_or(const char* name, uint64_t fallback) {
  const std::string v = test::env_var(name);
  return v.empty() ? fallback : std::strtoull(v.c_str(), nullptr, 10);
}

struct Job {
  std::string bin, dir, config, data;
  int world = 1;

  // Every run, the first one included, is `--resume auto` (what a preemptible cluster restarts with);
  // a checkpoint after every step, so that kills land in and between checkpoint writes.
  std::vector<std::string> args(const std::string& out) const {
    return {bin, "train", "--config", config, "--data", data, "--out", out, "--steps", std::to_string(kSteps),
            "--batch", "2", "--seq", "16", "--global-batch", "64", "--threads", "1", "--sample-tokens", "0",
            "--eval-every", "0", "--eval-batches", "1", "--save-every", "1", "--keep", "2", "--log-every", "1",
            "--seed", "5", "--lr", "1e-2", "--dist-timeout", "20", "--resume", "auto"};
  }
};

Job make_job(const std::string& name, int world) {
  Job j;
  j.bin = test::gqe_bin();
  j.world = world;
  j.dir = test::train_inputs_dir(name, 200, "And God said, Let there be light: and there was light. ");
  j.data = j.dir + "/text.txt";
  j.config = j.dir + "/model.json";
  return j;
}

// Starts the job's ranks into `out`; `kill_in_checkpoint` > 0 makes rank 0 (the writer) SIGKILL itself
// halfway through its N-th checkpoint write (train_checkpoint.cpp's test hook).
std::vector<pid_t> start(const Job& j, const std::string& out, const std::string& log_prefix, int kill_in_checkpoint) {
  const int port = test::free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < j.world; ++r) {
    auto env = j.world > 1 ? test::rank_env(r, j.world, port) : std::vector<std::pair<std::string, std::string>>{};
    if (kill_in_checkpoint > 0 && r == 0) env.emplace_back("GQE_TEST_KILL_IN_CHECKPOINT", std::to_string(kill_in_checkpoint));
    pids.push_back(test::spawn(j.args(out), env, log_prefix + std::to_string(r) + ".log"));
  }
  return pids;
}

std::string logs(const std::string& prefix, int world) {
  std::string s;
  for (int r = 0; r < world; ++r) s += "--- rank " + std::to_string(r) + ":\n" + test::slurp(prefix + std::to_string(r) + ".log");
  return s;
}

// The loss of each step, the last record written for it winning: a step re-run after a resume is logged
// again. Lines that do not parse (a record torn by a kill) are skipped; every step must still be there.
std::map<int64_t, double> losses(const std::string& metrics_path, int* torn) {
  std::map<int64_t, double> out;
  std::ifstream f(metrics_path);
  std::string line;
  while (std::getline(f, line)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      ++*torn;
      continue;
    }
    if (j.value("type", "") == "train") out[j.at("step").get<int64_t>()] = j.at("loss").get<double>();
  }
  return out;
}

std::string latest_checkpoint(const std::string& out) {
  std::string s = test::slurp(out + "/checkpoints/latest");
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "none" : s;
}

size_t train_records(const std::string& metrics_path) {
  const std::string s = test::slurp(metrics_path);
  size_t n = 0;
  for (size_t at = s.find("\"type\":\"train\""); at != std::string::npos; at = s.find("\"type\":\"train\"", at + 1)) ++n;
  return n;
}

// Whether one of `pids` has exited (without reaping it: wait_for still reports its status).
bool any_exited(const std::vector<pid_t>& pids) {
  for (pid_t p : pids) {
    siginfo_t info{};
    if (waitid(P_PID, id_t(p), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == p) return true;
  }
  return false;
}

// Mean milliseconds per training step of a finished run, from its metrics' elapsed_s.
double step_ms(const std::string& metrics_path) {
  std::ifstream f(metrics_path);
  std::string line;
  std::vector<double> elapsed;
  while (std::getline(f, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("type", "") == "train") elapsed.push_back(j.at("elapsed_s").get<double>());
  }
  return elapsed.size() < 2 ? 100.0 : 1000.0 * (elapsed.back() - elapsed.front()) / double(elapsed.size() - 1);
}

void check_kills_resume_bit_exactly(int world) {
  GQE_SKIP_WITHOUT_BIN();
  Job j = make_job("kill_resume_" + std::to_string(world), world);
  const uint64_t seed = env_or("GQE_KILL_RESUME_SEED", 1);
  const int attempts = int(env_or("GQE_KILL_RESUME_ATTEMPTS", 5));

  // The uninterrupted run, and how long a step takes (the range of the random kill delays).
  const std::string ref = j.dir + "/straight";
  for (pid_t p : start(j, ref, j.dir + "/straight", 0)) ASSERT_EQ(test::wait_for(p, 120), 0) << logs(j.dir + "/straight", world);
  const double ms_per_step = std::max(1.0, step_ms(ref + "/metrics.jsonl"));

  std::mt19937_64 rng(seed);
  const std::string out = j.dir + "/killed";
  std::cout << "kill/resume, " << world << " rank(s), seed " << seed << " (GQE_KILL_RESUME_SEED), " << int(ms_per_step)
            << " ms per step" << std::endl;
  for (int a = 0; a < attempts; ++a) {
    const std::string prefix = j.dir + "/attempt" + std::to_string(a) + "-rank";
    // One attempt in three dies inside a checkpoint write. The others are killed once this run has logged
    // 1-3 steps, 0 to 1.5 steps' time later: anywhere in a step or in the checkpoint write after it.
    const bool in_checkpoint = rng() % 3 == 0;
    const int nth = 1 + int(rng() % 3);
    const size_t steps_first = 1 + rng() % 3;
    const int delay_ms = int(rng() % uint64_t(1.5 * ms_per_step + 1));
    const int victim = int(rng() % uint64_t(world));
    const size_t records_before = train_records(out + "/metrics.jsonl");
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<pid_t> pids = start(j, out, prefix, in_checkpoint ? nth : 0);
    std::string what;
    if (in_checkpoint) {
      what = "rank 0 killed in its checkpoint write #" + std::to_string(nth);
    } else {
      while (train_records(out + "/metrics.jsonl") < records_before + steps_first && !any_exited(pids) &&
             std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      kill(pids[victim], SIGKILL);
      what = "rank " + std::to_string(victim) + " killed " + std::to_string(delay_ms) + " ms after this run's step " +
             std::to_string(steps_first);
    }
    // The others stop by themselves once a rank is gone (or finish, when the kill came too late).
    std::vector<int> rcs(world);
    for (int r = 0; r < world; ++r) rcs[r] = test::wait_for(pids[r], 90);
    const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "  attempt " << a << ": " << what << "; exit codes";
    for (int rc : rcs) std::cout << " " << rc;
    std::cout << " after " << std::fixed << std::setprecision(1) << secs << " s; latest checkpoint "
              << latest_checkpoint(out) << std::endl;
    for (int r = 0; r < world; ++r) {
      ASSERT_NE(rcs[r], -1) << "attempt " << a << ": rank " << r << " hung\n" << logs(prefix, world);
      // Killed (137), finished (0), or, beside a killed rank, stopped with an error (1); never an
      // internal error (3) or a crash: a resume from what a kill left must work.
      if (rcs[r] != 137 && rcs[r] != 0)
        ASSERT_TRUE(world > 1 && rcs[r] == 1) << "attempt " << a << ": rank " << r << " exited " << rcs[r] << "\n"
                                              << logs(prefix, world);
    }
  }
  const std::string prefix = j.dir + "/final-rank";
  for (pid_t p : start(j, out, prefix, 0)) ASSERT_EQ(test::wait_for(p, 120), 0) << logs(prefix, world);

  EXPECT_EQ(test::slurp(out + "/model.safetensors"), test::slurp(ref + "/model.safetensors"))
      << "final weights differ from the uninterrupted run (seed " << seed << ")";
  const std::string last = "/checkpoints/" + latest_checkpoint(ref) + "/optimizer.safetensors";
  EXPECT_EQ(latest_checkpoint(out), latest_checkpoint(ref));
  EXPECT_EQ(test::slurp(out + last), test::slurp(ref + last)) << "final optimizer state differs (seed " << seed << ")";
  int torn_ref = 0, torn = 0;
  const auto want = losses(ref + "/metrics.jsonl", &torn_ref), got = losses(out + "/metrics.jsonl", &torn);
  ASSERT_EQ(want.size(), size_t(kSteps));
  EXPECT_EQ(torn_ref, 0);
  for (const auto& [step, loss] : want) {
    ASSERT_TRUE(got.count(step)) << "no record of step " << step << " (seed " << seed << ")";
    EXPECT_EQ(got.at(step), loss) << "step " << step << " (seed " << seed << ")";
  }
}

}  // namespace

TEST(KillResume, OneProcessEndsBitExactly) { check_kills_resume_bit_exactly(1); }

TEST(KillResume, TwoGlooRanksEndBitExactly) { check_kills_resume_bit_exactly(2); }

}  // namespace gqe
