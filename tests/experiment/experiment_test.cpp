// The experiment driver end to end on a microscopic budget, through the real `gqe` binary: a complete
// report whose numbers match the run logs, and a killed experiment that completes without redoing
// finished runs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "gqe/core/fs.h"
#include "gqe/experiment/experiment.h"
#include "gqe/experiment/report.h"
#include "test_util.h"

namespace gqe {
namespace {
using nlohmann::json;


std::string gqe_bin() {
  const char* b = std::getenv("GQE_BIN");
  if (!b) throw std::runtime_error("GQE_BIN is not set (run through ctest)");
  return b;
}

// A microscopic model and corpus, written by the test.
std::string setup(const std::string& dir) {
  std::ofstream(dir + "/base.json") << R"({"vocab_size": 256, "hidden_size": 16, "num_hidden_layers": 1,
    "intermediate_size": 24, "max_position_embeddings": 64,
    "attention": {"kind": "gqe", "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4, "top_k": 1,
                  "variant": "gqe", "aux_loss_weight": 0.01}})";
  std::ofstream text(dir + "/text.txt");
  for (int i = 0; i < 300; ++i) text << "In the beginning was the word " << i % 17 << ", and the word was good.\n";
  return dir;
}

std::vector<std::string> experiment_args(const std::string& dir) {
  return {gqe_bin(), "experiment", "--config", dir + "/base.json", "--out", dir + "/exp", "--data", dir + "/text.txt",
          "--seeds", "1,2", "--steps", "4", "--batch", "2", "--seq", "16", "--eval-every", "2", "--eval-batches", "1",
          "--bench-lengths", "16,32", "--bench-repeats", "1", "--threads", "1"};
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);  // its own process group, so the test can kill it with its children
    FILE* f = std::freopen(log.c_str(), "a", stdout);
    (void)f;
    ::dup2(1, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

double last_val_loss(const std::string& metrics) {
  std::ifstream f(metrics);
  std::string line;
  double v = NAN;
  while (std::getline(f, line)) {
    json j = json::parse(line);
    if (j.value("type", "") == "val") v = j["val_loss"].get<double>();
  }
  return v;
}

TEST(Experiment, MicroscopicRunWritesACompleteReportMatchingTheLogs) {
  const std::string dir = setup(test::scratch_dir("experiment_complete"));
  ASSERT_EQ(wait_exit(spawn(experiment_args(dir), dir + "/out.log")), 0) << fs::read_file(dir + "/out.log");
  const std::string rep = dir + "/exp/report";
  const std::string md = fs::read_file(rep + "/README.md");
  for (const char* s : {"GQA baseline", "GQE (renorm", "hard concat only", "weighted concat", "3 of 4", "4 of 4",
                        "Prefill speed", "Setup"})
    EXPECT_NE(md.find(s), std::string::npos) << s << "\n" << md;
  json r = json::parse(fs::read_file(rep + "/results.json"));
  for (const char* v : {"gqa", "gqe", "hard_concat", "weighted_concat"}) {
    ASSERT_TRUE(r.contains(v)) << v;
    std::vector<double> vals;
    for (const auto& s : r[v]["seeds"]) {
      const std::string run = dir + "/exp/runs/" + experiment_run_name(v, s["seed"].get<int64_t>());
      EXPECT_DOUBLE_EQ(s["final_val_loss"].get<double>(), last_val_loss(run + "/metrics.jsonl")) << run;
      vals.push_back(s["final_val_loss"].get<double>());
    }
    EXPECT_EQ(vals.size(), 2u);
    EXPECT_DOUBLE_EQ(r[v]["val_loss_mean"].get<double>(), mean_std(vals).mean);
    EXPECT_DOUBLE_EQ(r[v]["val_loss_std"].get<double>(), mean_std(vals).std);
  }
  EXPECT_EQ(r["gqe"]["active_query_heads"].get<int64_t>(), 3);  // kG + 1 with G = 2, k = 1
  EXPECT_EQ(r["bench"]["rows"].size(), 2u);
  for (const char* png : {"loss_curves.png", "speedup.png", "routing.png"})  // gnuplot is a dependency
    EXPECT_TRUE(fs::exists(rep + "/" + png)) << png;
  EXPECT_TRUE(fs::exists(dir + "/exp/runs/gqe-seed1/routes.json"));
  EXPECT_FALSE(fs::exists(dir + "/exp/runs/gqa-seed1/routes.json"));  // GQA has no router
}

TEST(Experiment, KilledExperimentResumesWithoutRedoingFinishedRuns) {
  const std::string dir = setup(test::scratch_dir("experiment_kill"));
  pid_t pid = spawn(experiment_args(dir), dir + "/first.log");
  // wait until the first run has finished and the second is under way, then kill -9 the whole group
  const std::string done1 = dir + "/exp/runs/gqa-seed1/DONE.json";
  const std::string started2 = dir + "/exp/runs/gqe-seed1/train.log";
  auto t0 = std::chrono::steady_clock::now();
  while (!(fs::exists(done1) && fs::exists(started2)) && std::chrono::steady_clock::now() - t0 < std::chrono::minutes(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(done1)) << fs::read_file(dir + "/first.log");
  ::kill(-pid, SIGKILL);
  wait_exit(pid);
  const std::string log1_before = fs::read_file(dir + "/exp/runs/gqa-seed1/train.log");
  ASSERT_EQ(wait_exit(spawn(experiment_args(dir), dir + "/second.log")), 0) << fs::read_file(dir + "/second.log");
  const std::string second = fs::read_file(dir + "/second.log");
  EXPECT_NE(second.find("gqa seed 1: trained earlier, skipping"), std::string::npos) << second;
  EXPECT_EQ(fs::read_file(dir + "/exp/runs/gqa-seed1/train.log"), log1_before);  // not run again
  EXPECT_TRUE(fs::exists(dir + "/exp/report/README.md"));
  // the same directory with another budget is refused, not silently mixed into one table
  std::vector<std::string> other = experiment_args(dir);
  other[std::find(other.begin(), other.end(), "--steps") - other.begin() + 1] = "5";
  EXPECT_NE(wait_exit(spawn(other, dir + "/third.log")), 0);
  EXPECT_NE(fs::read_file(dir + "/third.log").find("different budget"), std::string::npos) << fs::read_file(dir + "/third.log");
}

TEST(Experiment, VariantConfigsDifferOnlyInAttention) {
  const std::string dir = setup(test::scratch_dir("experiment_configs"));
  write_variant_config(dir + "/base.json", "gqa", dir + "/gqa.json");
  write_variant_config(dir + "/base.json", "hard_concat", dir + "/hc.json");
  json a = json::parse(fs::read_file(dir + "/gqa.json")), b = json::parse(fs::read_file(dir + "/hc.json"));
  EXPECT_EQ(a["attention"]["kind"], "gqa");
  EXPECT_FALSE(a["attention"].contains("top_k"));
  EXPECT_EQ(b["attention"]["variant"], "hard_concat");
  a.erase("attention");
  b.erase("attention");
  EXPECT_EQ(a, b);
  EXPECT_THROW(write_variant_config(dir + "/base.json", "soft", dir + "/x.json"), std::exception);
}

}  // namespace
}  // namespace gqe
