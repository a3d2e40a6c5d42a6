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

// write_folder_atomically: what `gqe export` and `gqe import` write their folders with.
TEST(FolderWrite, AFolderThatAppearsWhileWritingIsLeftAsItIs) {
  const std::string dir = test::scratch_dir("folder_appears"), out = dir + "/out";
  const std::string e = error_of([&] {
    write_folder_atomically(out, [&](const std::string& tmp) {
      std::ofstream(tmp + "/model.safetensors") << "new";
      fs::mkdirs(out);  // another program creates the folder meanwhile
      std::ofstream(out + "/mine.txt") << "the user's";
    });
  });
  EXPECT_EQ(e, out + ": appeared while this was written and is not an empty folder; left as it is, nothing written "
                     "(name a new folder)");
  EXPECT_EQ(fs::list_dir(out), std::vector<std::string>{"mine.txt"});
  EXPECT_EQ(fs::read_file(out + "/mine.txt"), "the user's");
  EXPECT_EQ(fs::list_dir(dir), std::vector<std::string>{"out"});  // no temporary left beside it
}

TEST(FolderWrite, AMissingOrEmptyFolderIsWrittenWholeAndNothingElseIsTouched) {
  const std::string dir = test::scratch_dir("folder_write"), pid = std::to_string(::getpid());
  // A user's folder that happens to carry this process's pid in the name, as the old temporaries did.
  fs::mkdirs(dir + "/out.tmp-" + pid);
  std::ofstream(dir + "/out.tmp-" + pid + "/keep.txt") << "x";
  write_folder_atomically(dir + "/out/", [](const std::string& tmp) { std::ofstream(tmp + "/a.txt") << "a"; });
  EXPECT_EQ(fs::list_dir(dir + "/out"), std::vector<std::string>{"a.txt"});
  fs::mkdirs(dir + "/empty");
  write_folder_atomically(dir + "/empty", [](const std::string& tmp) { std::ofstream(tmp + "/b.txt") << "b"; });
  EXPECT_EQ(fs::list_dir(dir + "/empty"), std::vector<std::string>{"b.txt"});
  EXPECT_EQ(fs::list_dir(dir), (std::vector<std::string>{"empty", "out", "out.tmp-" + pid}));
  EXPECT_EQ(fs::list_dir(dir + "/out.tmp-" + pid), std::vector<std::string>{"keep.txt"});
  // A folder with contents is refused before anything is written; a failing writer leaves nothing.
  EXPECT_EQ(error_of([&] { write_folder_atomically(dir + "/out", [](const std::string&) { FAIL(); }); }),
            dir + "/out: already exists and is not an empty folder; name a new folder");
  EXPECT_EQ(error_of([&] {
              write_folder_atomically(dir + "/bad", [](const std::string&) { throw Error("the writer failed"); });
            }),
            "the writer failed");
  EXPECT_EQ(fs::list_dir(dir), (std::vector<std::string>{"empty", "out", "out.tmp-" + pid}));
}

TEST(FolderWrite, AKilledWritersTemporaryIsClearedOnlyWhenItsProcessIsGone) {
  const std::string dir = test::scratch_dir("folder_debris");
  const std::string dead = dir + "/.out.gqe-partial." + host() + "." + std::to_string(dead_pid());
  const std::string live = dir + "/.out.gqe-partial." + host() + ".1";  // init runs as long as the host
  const std::string elsewhere = dir + "/.out.gqe-partial.another-host.12";
  for (const auto& d : {dead, live, elsewhere}) {
    fs::mkdirs(d);
    std::ofstream(d + "/model.safetensors") << "half";
  }
  write_folder_atomically(dir + "/out", [](const std::string& tmp) { std::ofstream(tmp + "/a.txt") << "a"; });
  EXPECT_EQ(fs::list_dir(dir + "/out"), std::vector<std::string>{"a.txt"});
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live + "/model.safetensors"));
  EXPECT_TRUE(fs::exists(elsewhere + "/model.safetensors"));
}

}  // namespace
}  // namespace gqe
