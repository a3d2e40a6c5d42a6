// `gqe train` through the executable (GQE_BIN): the run directory's ownership and state, data checks,
// memory checks and the errors for what cannot work.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gqe/core/config.h"
#include "gqe/core/fs.h"
#include "gqe/data/shard.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {
namespace {

using test::CommandRun;


class CliTrain : public ::testing::Test {
 protected:
  void SetUp() override { GQE_SKIP_WITHOUT_BIN(); }
  // A tiny byte-level model and a text file in a fresh directory.
  std::string setup(const std::string& name) {
    dir_ = test::train_inputs_dir(name, 200, "And the evening and the morning were the ", " day.\n");
    return dir_;
  }
  test::Args train_args(const std::string& out, const test::Args& extra = {}) const {
    return test::concat({"train", "--config", dir_ + "/model.json", "--data", dir_ + "/text.txt", "--out", out,
                         "--batch", "2", "--seq", "16", "--threads", "1", "--sample-tokens", "0", "--eval-every", "0"},
                        extra);
  }
  std::string dir_;
};

std::vector<nlohmann::json> read_records(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line));  // throws on a broken line
  return out;
}

TEST_F(CliTrain, TwoTrainingsOnOneOutDirectory) {
  const std::string dir = setup("cli_train_lock");
  const std::string run = dir + "/run";
  // The first run trains "forever"; started directly, so that its pid is the one the lock records.
  const pid_t first = test::spawn(
      test::concat({test::gqe_bin()}, train_args(run, {"--steps", "1000000", "--seed", "11"})), {}, dir + "/first.txt");
  ASSERT_GE(first, 0);
  // Wait until it has written its first metrics (it owns the directory well before).
  for (int i = 0; i < 1200 && !fs::exists(run + "/metrics.jsonl"); ++i) ::usleep(50000);
  ASSERT_TRUE(fs::exists(run + "/metrics.jsonl")) << fs::read_file(dir + "/first.txt");
  const std::string recipe_before = fs::read_file(run + "/recipe.json");
  const CommandRun second = test::run_gqe(train_args(run, {"--steps", "2", "--seed", "22"}));
  const bool first_alive = ::kill(first, 0) == 0;
  ::kill(first, SIGKILL);
  ::waitpid(first, nullptr, 0);
  ASSERT_TRUE(first_alive) << "the first run ended early: " << fs::read_file(dir + "/first.txt");
  EXPECT_EQ(second.rc, 1) << second.out;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_NE(second.out.find("gqe train: error: --out " + run + ": in use by another gqe process (pid " +
                            std::to_string(first) + " on host " + host +
                            "); wait for it to finish, or use another directory\n"),
            std::string::npos)
      << second.out;
  EXPECT_EQ(std::count(second.out.begin(), second.out.end(), '\n'), 1) << second.out;
  // Nothing of the first run was touched: its recipe (seed 11) and its log are intact.
  EXPECT_EQ(fs::read_file(run + "/recipe.json"), recipe_before);
  EXPECT_NE(recipe_before.find("\"seed\": 11"), std::string::npos) << recipe_before;
  EXPECT_FALSE(read_records(run + "/metrics.jsonl").empty());
}

pid_t dead_pid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  ::waitpid(p, nullptr, 0);
  return p;
}

TEST_F(CliTrain, StartRemovesTheTemporariesOfDeadOwnersOnly) {
  const std::string dir = setup("cli_train_stale");
  const std::string run = dir + "/run", dead = std::to_string(dead_pid()), live = std::to_string(::getpid());
  fs::mkdirs(run + "/checkpoints/.tmp-step-00000002-" + dead);
  std::ofstream(run + "/model.safetensors.tmp." + dead) << std::string(4096, 'w');
  std::ofstream(run + "/checkpoints/latest.tmp." + dead) << "step-00000002\n";
  std::ofstream(run + "/checkpoints/.tmp-step-00000002-" + dead + "/model.safetensors") << "w";
  std::ofstream(run + "/notes.tmp." + live) << "a live process's file";
  const CommandRun r = test::run_gqe(train_args(run, {"--steps", "1"}));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("removed " + run + "/model.safetensors.tmp." + dead + " (left behind by a process that no "
                       "longer runs)"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(run + "/model.safetensors.tmp." + dead));
  EXPECT_FALSE(fs::exists(run + "/checkpoints/latest.tmp." + dead));
  EXPECT_FALSE(fs::exists(run + "/checkpoints/.tmp-step-00000002-" + dead));
  EXPECT_TRUE(fs::exists(run + "/notes.tmp." + live));
}

TEST_F(CliTrain, ResumeRepairsATornMetricsLineAndNeverDuplicatesRecords) {
  const std::string dir = setup("cli_train_torn");
  const std::string run = dir + "/run";
  ASSERT_TRUE(test::exited(test::run_gqe(train_args(run, {"--steps", "4", "--stop-at", "2"})), 0));
  // As if the run had gone on past its checkpoint at step 2 and been killed while writing step 4.
  const std::string log = run + "/metrics.jsonl";
  std::string text = fs::read_file(log);
  text += text.substr(0, text.find('\n') + 1);  // a record (step 1 again is wrong too: it comes after step 2)
  text.replace(text.rfind("\"step\":1,"), 9, "\"step\":3,");
  text += R"({"type":"train","step":4,"loss":2.)";
  std::ofstream(log, std::ios::trunc) << text;
  const CommandRun r = test::run_gqe(train_args(run, {"--steps", "4", "--resume", "auto"}));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("dropped a torn last line"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dropped 1 record(s) past the resumed step 2"), std::string::npos) << r.out;
  std::vector<int64_t> steps;
  for (const auto& j : read_records(log))
    if (j["type"] == "train") steps.push_back(j["step"].get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST_F(CliTrain, ARerunIntoAFinishedRunIsRefusedAndOverwriteStartsOver) {
  const std::string dir = setup("cli_train_rerun");
  const std::string run = dir + "/run";
  ASSERT_TRUE(test::exited(test::run_gqe(train_args(run, {"--steps", "3", "--save-every", "1", "--keep", "5"})), 0));
  std::ofstream(run + "/notes.txt") << "the user's notes";
  const std::string model = fs::read_file(run + "/model.safetensors"), metrics = fs::read_file(run + "/metrics.jsonl");
  // Without --resume: refused before anything is touched, naming both ways on.
  CommandRun r = test::run_gqe(train_args(run, {"--steps", "1"}));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(r.out, "gqe train: error: --out " + run + " already holds a run (metrics.jsonl, model.safetensors, "
                   "checkpoints/step-00000003); continue it with --resume " + run +
                   ", or start over with --overwrite (deletes that run's checkpoints, metrics and model)\n");
  EXPECT_EQ(fs::read_file(run + "/model.safetensors"), model);
  EXPECT_EQ(fs::read_file(run + "/metrics.jsonl"), metrics);
  r = test::run_gqe(train_args(run, {"--steps", "1", "--overwrite", "--resume", "auto"}));
  EXPECT_TRUE(test::fails_with(r, "--overwrite starts over and --resume continues: give one of them"));
  EXPECT_EQ(fs::read_file(run + "/metrics.jsonl"), metrics);
  // --overwrite: the previous run's files go, the new run's alone are there; the user's notes stay.
  r = test::run_gqe(train_args(run, {"--steps", "2", "--stop-at", "1", "--overwrite"}));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--overwrite: removed checkpoints metrics.jsonl model.safetensors config.json recipe.json "
                       "tokenizer_info.json from " + run),
            std::string::npos)
      << r.out;
  EXPECT_EQ(fs::list_dir(run + "/checkpoints"), (std::vector<std::string>{"latest", "step-00000001"}));
  const auto train_steps = [&] {
    std::vector<int64_t> steps;
    for (const auto& j : read_records(run + "/metrics.jsonl"))
      if (j["type"] == "train") steps.push_back(j["step"].get<int64_t>());
    return steps;
  };
  EXPECT_EQ(train_steps(), std::vector<int64_t>{1});
  EXPECT_EQ(fs::read_file(run + "/notes.txt"), "the user's notes");
  // --resume continues it as before.
  r = test::run_gqe(train_args(run, {"--steps", "2", "--resume", run}));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(train_steps(), (std::vector<int64_t>{1, 2}));
}

TEST_F(CliTrain, ResumeRefusesAnotherRunsCheckpointNamingTheFieldAndKeepsItsCadenceFree) {
  const std::string dir = setup("cli_train_resume_identity");
  const std::string run = dir + "/run";
  std::ofstream(dir + "/other.txt") << fs::read_file(dir + "/text.txt") << "one more line\n";
  const auto args = [&](const std::string& data, const test::Args& flags) {
    return test::concat({"train", "--config", dir + "/model.json", "--data", dir + "/" + data, "--out", run, "--batch",
                         "2", "--seq", "16", "--sample-tokens", "0", "--warmup", "1"},
                        flags);
  };
  ASSERT_TRUE(test::exited(test::run_gqe(args("text.txt", {"--steps", "4", "--stop-at", "2", "--seed", "5", "--threads",
                                                           "1", "--eval-every", "0"})),
                           0));
  const std::string latest = fs::read_file(run + "/checkpoints/latest");
  const std::string metrics = fs::read_file(run + "/metrics.jsonl");
  const auto refused = [&](const std::string& data, const test::Args& flags, const std::string& message) {
    const CommandRun r = test::run_gqe(
        args(data, test::concat({"--steps", "4", "--threads", "1", "--eval-every", "0", "--resume", "auto"}, flags)));
    EXPECT_EQ(r.rc, 1) << test::shell_quoted(flags) << "\n" << r.out;
    const size_t at = r.out.find("gqe train: error: ");
    ASSERT_NE(at, std::string::npos) << r.out;
    const std::string error = r.out.substr(at);
    EXPECT_NE(error.find("trainer_state.json: field 'run." + message + "; a resumed run keeps its model, data, "
                         "tokenizer, seed and recipe (only the step count"),
              std::string::npos)
        << test::shell_quoted(flags) << "\n" << r.out;
    EXPECT_EQ(std::count(error.begin(), error.end(), '\n'), 1) << error;
    EXPECT_EQ(fs::read_file(run + "/checkpoints/latest"), latest);
    EXPECT_EQ(fs::read_file(run + "/metrics.jsonl"), metrics);
  };
  refused("text.txt", {"--seed", "6"}, "recipe.seed': the checkpoint's run has 5, this run 6");
  refused("text.txt", {"--seed", "5", "--lr", "1e-2"}, "recipe.lr': the checkpoint's run has 0.003, this run 0.01");
  const auto size = [&](const std::string& f) { return std::to_string(fs::read_file(dir + "/" + f).size()); };
  refused("other.txt", {"--seed", "5"},
          "data.train': the checkpoint's run has text.txt (" + size("text.txt") + " bytes), this run other.txt (" +
              size("other.txt") + " bytes)");
  // The length, the cadence, threads and logging may change (scripts/study.py's branches do).
  const CommandRun r = test::run_gqe(
      args("text.txt", {"--steps", "6", "--resume", "auto", "--seed", "5", "--save-every", "1", "--keep", "5",
                        "--log-every", "1", "--eval-every", "2", "--eval-batches", "1", "--threads", "2"}));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from"), std::string::npos) << r.out;
}

TEST_F(CliTrain, DataSeedAndTokenLimitAreTheRunsOwnAndARunWithoutThemIsAnother) {
  const std::string dir = setup("cli_train_data_seed");
  // Shards of the text, so that --train-tokens applies.
  ASSERT_TRUE(test::exited(test::run_gqe({"data", "prepare", "--input", dir + "/text.txt", "--out", dir + "/shards",
                                          "--val-fraction", "0", "--quiet"}),
                           0));
  const auto args = [&](const std::string& out, const test::Args& flags) {
    return test::concat({"train", "--config", dir + "/model.json", "--train-shards", dir + "/shards/train_*.tok",
                         "--out", dir + "/" + out, "--batch", "2", "--seq", "16", "--sample-tokens", "0", "--warmup",
                         "1", "--threads", "1", "--eval-every", "0", "--log-every", "1"},
                        flags);
  };
  const auto first_loss = [&](const std::string& out) {
    return read_records(dir + "/" + out + "/metrics.jsonl").at(0).at("loss").get<double>();
  };
  // Same initialisation, another data order: another first batch, so another first loss. --data-seed equal to
  // --seed is the run without it.
  for (const auto& [out, flags] : std::vector<std::pair<std::string, test::Args>>{
           {"a", {"--seed", "5"}},
           {"b", {"--seed", "5", "--data-seed", "5"}},
           {"c", {"--seed", "5", "--data-seed", "6"}}})
    ASSERT_TRUE(test::exited(test::run_gqe(args(out, test::concat({"--steps", "2"}, flags))), 0)) << out;
  EXPECT_EQ(first_loss("a"), first_loss("b"));
  EXPECT_NE(first_loss("a"), first_loss("c"));
  // Resuming without the checkpoint's data seed or token limit is refused, naming the field.
  ASSERT_TRUE(test::exited(test::run_gqe(args("d", {"--steps", "4", "--stop-at", "2", "--seed", "5", "--data-seed", "6",
                                                    "--train-tokens", "3000"})),
                           0));
  for (const auto& [flags, field] : std::vector<std::pair<test::Args, std::string>>{
           {{"--seed", "5", "--train-tokens", "3000"},
            "run.recipe.data_seed': the checkpoint's run has 6, this run none"},
           {{"--seed", "5", "--data-seed", "6"},
            "run.data.train_tokens': the checkpoint's run has 3000, this run none"},
           {{"--seed", "5", "--data-seed", "6", "--train-tokens", "2999"},
            "the checkpoint's run has 3000, this run 2999"}})
    EXPECT_TRUE(
        test::fails_with(test::run_gqe(args("d", test::concat({"--steps", "4", "--resume", "auto"}, flags))), field));
  const CommandRun r = test::run_gqe(
      args("d", {"--steps", "4", "--resume", "auto", "--seed", "5", "--data-seed", "6", "--train-tokens", "3000"}));
  EXPECT_EQ(r.rc, 0) << r.out;
  // --train-tokens limits shards only; with --data it is a one-line error.
  const CommandRun t = test::run_gqe(train_args(dir + "/e", {"--steps", "1", "--train-tokens", "100"}));
  EXPECT_TRUE(test::fails_with(t, "gqe train: error: --train-tokens limits --train-shards"));
}

TEST_F(CliTrain, StopAtZeroClaimsNoCheckpoint) {
  const std::string dir = setup("cli_train_stop0");
  const CommandRun r = test::run_gqe(train_args(dir + "/run", {"--steps", "4", "--stop-at", "0"}));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out.find("checkpoint in"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("trained to step 0 (0 steps in this run"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no checkpoint written"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir + "/run/checkpoints"));
}

TEST_F(CliTrain, OutThatIsAFileOrCannotBeCreatedIsAOneLineError) {
  const std::string dir = setup("cli_train_out");
  std::ofstream(dir + "/file") << "keep";
  CommandRun r = test::run_gqe(train_args(dir + "/file", {"--steps", "1"}));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(r.out, "gqe train: error: --out " + dir + "/file: exists and is not a directory (expected a run directory)\n");
  EXPECT_EQ(fs::read_file(dir + "/file"), "keep");
  r = test::run_gqe(train_args(dir + "/file/run", {"--steps", "1"}));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(r.out.rfind("gqe train: error: --out " + dir + "/file/run: cannot create the run directory: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  fs::mkdirs(dir + "/ro");
  if (!test::make_unwritable(dir + "/ro")) GTEST_SKIP() << "cannot make a directory read-only here";
  r = test::run_gqe(train_args(dir + "/ro", {"--steps", "1"}));
  test::make_writable(dir + "/ro");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(r.out.rfind("gqe train: error: --out " + dir + "/ro: cannot write in the run directory: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_TRUE(fs::list_dir(dir + "/ro").empty());
}

TEST_F(CliTrain, TokenIdsBeyondTheVocabularyAreRefusedAtLoad) {
  const std::string dir = setup("cli_train_vocab");
  std::vector<int64_t> tokens(400, 65);
  tokens[333] = 1000;  // an llm.c shard records no vocabulary; the model has 256
  write_llmc_shard(dir + "/train.bin", tokens);
  const CommandRun r = test::run_gqe({"train", "--config", dir + "/model.json", "--train-shards", dir + "/train.bin",
                                      "--out", dir + "/run", "--steps", "50", "--batch", "2", "--seq", "16",
                                      "--threads", "1", "--sample-tokens", "0", "--eval-every", "0"});
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("gqe train: error: " + dir + "/train.bin: token id 1000 is outside the model's vocabulary of "
                       "256 (token offset 333, byte offset 1690;"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir + "/run/metrics.jsonl"));  // refused before the first step
}

TEST_F(CliTrain, AModelTooLargeForMemoryIsRefusedBeforeAllocating) {
  const std::string dir = setup("cli_train_memory");
  ModelConfig c = test::small_config("gqa", 4, 2);
  c.vocab_size = int64_t(1) << 36;  // 2^36 x 32 fp32 weights + AdamW: ~35 TB
  std::ofstream(dir + "/huge.json") << model_config_to_json(c);
  const auto train = [&](const std::string& config, const test::Args& extra) {
    return test::concat({"train", "--config", dir + "/" + config, "--data", dir + "/text.txt", "--out", dir + "/run",
                         "--steps", "1", "--batch", "2", "--seq", "16", "--threads", "1", "--sample-tokens", "0",
                         "--eval-every", "0"},
                        extra);
  };
  CommandRun r = test::run_gqe(train("huge.json", {}));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(r.out.rfind("gqe train: error: this training run needs about ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(" available ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--ignore-memory-check"), std::string::npos) << r.out;
  // Insisting: the allocation itself fails (under an address-space limit, so that no machine overcommits
  // it), and that is one line too, not an internal error with a backtrace.
  r = test::run_gqe(train("huge.json", {"--ignore-memory-check"}),
                    test::RunOptions().with_limits("ulimit -v 16000000"));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(r.out.rfind("gqe train: error: out of memory", 0), 0u) << r.out;
  EXPECT_EQ(r.out.find("internal error"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Exception raised from"), std::string::npos) << r.out;
  // A storage size beyond int64 bytes (2^40 x 2^22 fp32) is reported the same way.
  c.vocab_size = int64_t(1) << 40;
  c.hidden_size = int64_t(1) << 22;
  c.intermediate_size = 1;
  c.attention.head_dim = 2;
  std::ofstream(dir + "/overflow.json") << model_config_to_json(c);
  r = test::run_gqe(train("overflow.json", {"--ignore-memory-check"}));
  EXPECT_TRUE(test::fails_with(r, "out of memory: Storage size calculation overflowed"));
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

}  // namespace
}  // namespace gqe
