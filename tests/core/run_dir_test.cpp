#include "gqe/core/run_dir.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "test_util.h"

namespace gqe {
namespace {

using test::error_of;

// A pid that certainly ran and certainly ended: a child that exited and was reaped.
pid_t dead_pid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  ::waitpid(p, nullptr, 0);
  return p;
}

std::string host() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

TEST(RunDirLock, ASecondOwnerIsRefusedNamingTheFirst) {
  const std::string dir = test::scratch_dir("run_lock") + "/run";
  {
    RunDirLock first(dir, "--out");
    EXPECT_TRUE(fs::is_directory(dir));
    // flock conflicts between two open file descriptions even inside one process.
    const std::string e = error_of([&] { RunDirLock second(dir, "--out"); });
    EXPECT_EQ(e, "--out " + dir + ": in use by another gqe process (pid " + std::to_string(::getpid()) + " on host " +
                     host() + "); wait for it to finish, or use another directory");
  }
  // Released with its owner: the next one gets it.
  EXPECT_NO_THROW(RunDirLock again(dir, "--out"));
}

TEST(RunDirLock, ARegularFileOrAnUncreatableDirectoryIsAOneLineError) {
  const std::string base = test::scratch_dir("run_lock_errors");
  std::ofstream(base + "/file") << "keep me";
  std::string e = error_of([&] { RunDirLock l(base + "/file", "--out"); });
  EXPECT_EQ(e, "--out " + base + "/file: exists and is not a directory (expected a run directory)");
  EXPECT_EQ(fs::read_file(base + "/file"), "keep me");
  e = error_of([&] { RunDirLock l(base + "/file/run", "--out"); });
  EXPECT_EQ(e.rfind("--out " + base + "/file/run: cannot create the run directory: ", 0), 0u) << e;
  fs::mkdirs(base + "/ro");
  if (!test::make_unwritable(base + "/ro")) GTEST_SKIP() << "cannot make a directory read-only here";
  e = error_of([&] { RunDirLock l(base + "/ro", "--out"); });
  test::make_writable(base + "/ro");
  EXPECT_EQ(e.rfind("--out " + base + "/ro: cannot write in the run directory: ", 0), 0u) << e;
}

TEST(StaleTempFiles, OwnersAreParsedFromEveryWritersNames) {
  EXPECT_EQ(temp_file_owner("model.safetensors.tmp.1234"), 1234);
  EXPECT_EQ(temp_file_owner("latest.tmp.77"), 77);
  EXPECT_EQ(temp_file_owner(".tmp-step-00000100-4321"), 4321);
  EXPECT_EQ(temp_file_owner(".old-step-00000100-99"), 99);
  EXPECT_EQ(temp_file_owner("step-00000100"), 0);
  EXPECT_EQ(temp_file_owner("model.safetensors"), 0);
  EXPECT_EQ(temp_file_owner("notes.tmp.x12"), 0);
  EXPECT_EQ(temp_file_owner(".tmp.5"), 0);
}

TEST(StaleTempFiles, OnlyTheTemporariesOfDeadOwnersAreRemoved) {
  const std::string dir = test::scratch_dir("stale_temp");
  const std::string dead = std::to_string(dead_pid()), live = std::to_string(::getpid());
  ASSERT_FALSE(process_alive(std::stoi(dead)));
  ASSERT_TRUE(process_alive(::getpid()));
  for (const std::string& n : {"model.safetensors.tmp." + dead, "latest.tmp." + dead, "config.json.tmp." + live,
                               std::string("model.safetensors"), std::string("notes.tmp")})
    std::ofstream(dir + "/" + n) << "x";
  fs::mkdirs(dir + "/.tmp-step-00000002-" + dead);
  std::ofstream(dir + "/.tmp-step-00000002-" + dead + "/model.safetensors") << "x";
  fs::mkdirs(dir + "/.tmp-step-00000004-" + live);
  auto removed = remove_stale_temp_files(dir);
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{".tmp-step-00000002-" + dead, "latest.tmp." + dead,
                                               "model.safetensors.tmp." + dead}));
  EXPECT_EQ(fs::list_dir(dir), (std::vector<std::string>{".tmp-step-00000004-" + live, "config.json.tmp." + live,
                                                         std::string("model.safetensors"), std::string("notes.tmp")}));
}

TEST(RunOutputs, ARunIsItsMetricsModelOrCheckpointsNotItsTemporaries) {
  const std::string dir = test::scratch_dir("run_outputs");
  EXPECT_TRUE(previous_run_outputs(dir + "/missing").empty());
  // What a start leaves before its first step, and a dead writer's temporaries: no run yet.
  std::ofstream(dir + "/metrics.jsonl");
  std::ofstream(dir + "/recipe.json") << "{}";
  std::ofstream(dir + "/" + kRunLockFile) << "pid 1\n";
  fs::mkdirs(dir + "/checkpoints/.tmp-step-00000002-" + std::to_string(dead_pid()));
  EXPECT_TRUE(previous_run_outputs(dir).empty());
  std::ofstream(dir + "/metrics.jsonl") << "{}\n";
  fs::mkdirs(dir + "/checkpoints/step-00000002");
  fs::mkdirs(dir + "/checkpoints/step-00000010");
  EXPECT_EQ(previous_run_outputs(dir), (std::vector<std::string>{"metrics.jsonl", "checkpoints/step-00000010"}));
}

TEST(RunOutputs, RemovingThemKeepsTheUsersFilesAndTheKeptTokenizer) {
  const std::string dir = test::scratch_dir("run_outputs_remove");
  for (const char* n : {"metrics.jsonl", "model.safetensors", "config.json", "recipe.json", "tokenizer_info.json",
                        "tokenizer.model", "notes.txt", ".gqe-run.lock"})
    std::ofstream(dir + "/" + n) << "x";
  fs::mkdirs(dir + "/checkpoints/step-00000002");
  const auto removed = remove_run_outputs(dir, {dir + "/./tokenizer.model"});
  EXPECT_EQ(removed, (std::vector<std::string>{"checkpoints", "metrics.jsonl", "model.safetensors", "config.json",
                                               "recipe.json", "tokenizer_info.json"}));
  EXPECT_EQ(fs::list_dir(dir), (std::vector<std::string>{".gqe-run.lock", "notes.txt", "tokenizer.model"}));
}

}  // namespace
}  // namespace gqe
