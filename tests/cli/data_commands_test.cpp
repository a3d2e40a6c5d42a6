// `gqe tokenizer train` and `gqe data prepare` end to end through the executable (GQE_BIN).
#include <gtest/gtest.h>

#include <map>

#include "process_util.h"
#include "test_util.h"
#include "data/data_test_util.h"
#include "gqe/core/fs.h"
#include "gqe/data/loader.h"
#include "gqe/tokenizers/sentencepiece.h"

namespace gqe {
namespace {

class CliData : public ::testing::Test {
 protected:
  void SetUp() override { GQE_SKIP_WITHOUT_BIN(); }
};

TEST_F(CliData, TrainTokenizerThenPrepareShards) {
  const std::string dir = test::scratch_dir("data/cli");
  std::string text;
  for (int i = 0; i < 800; ++i) text += "And it came to pass in verse " + std::to_string(i) + " that they went forth.\n";
  datatest::write_bytes(dir + "/c.txt", text);
  test::CommandRun t = test::run_gqe({"tokenizer", "train", "--input", dir + "/c.txt", "--out", dir + "/tok/m",
                                      "--vocab-size", "300", "--threads", "1"});
  ASSERT_EQ(t.rc, 0) << t.out;
  EXPECT_NE(t.out.find("300 pieces"), std::string::npos) << t.out;
  test::CommandRun p =
      test::run_gqe({"data", "prepare", "--input", dir + "/c.txt", "--out", dir + "/sh", "--tokenizer",
                     dir + "/tok/m.model", "--val-fraction", "0.1", "--chunk-bytes", "2000", "--quiet"});
  ASSERT_EQ(p.rc, 0) << p.out;
  EXPECT_NE(p.out.find("train: "), std::string::npos) << p.out;
  TokenLoader L({dir + "/sh/train_000000.tok"}, 16, 2, 0);
  EXPECT_EQ(L.vocab_size(), 300u);
  // JSONL input (FineWeb-Edu style) for both commands, into a directory that does not exist yet.
  std::string jsonl;
  for (int i = 0; i < 300; ++i)
    jsonl += "{\"text\": \"document " + std::to_string(i) + " says hello\\nand goodbye\", \"score\": 3}\n";
  datatest::write_bytes(dir + "/d.jsonl", jsonl);
  test::CommandRun tj = test::run_gqe(
      {"tokenizer", "train", dir + "/d.jsonl", "--out", dir + "/new/dir/j", "--vocab-size", "290", "--threads", "1"});
  ASSERT_EQ(tj.rc, 0) << tj.out;
  test::CommandRun pj = test::run_gqe({"data", "prepare", dir + "/d.jsonl", "--out", dir + "/shj", "--tokenizer",
                                       dir + "/new/dir/j.model", "--val-fraction", "0.1", "--quiet"});
  ASSERT_EQ(pj.rc, 0) << pj.out;
  EXPECT_NE(pj.out.find("300 documents"), std::string::npos) << pj.out;
  EXPECT_EQ(test::entries_containing(dir + "/new/dir", "tmp"), std::vector<std::string>{}) << "temp file left";
  // Running again without --force refuses to overwrite.
  test::CommandRun again =
      test::run_gqe({"data", "prepare", "--input", dir + "/c.txt", "--out", dir + "/sh", "--quiet"});
  EXPECT_TRUE(test::fails_with(again, "--force"));
}

TEST_F(CliData, BadInputsExitNonZeroNamingTheFile) {
  const std::string dir = test::scratch_dir("data/cli-bad");
  test::CommandRun r = test::run_gqe({"data", "prepare", "--input", dir + "/nope.txt", "--out", dir + "/o"});
  EXPECT_TRUE(test::fails_with(r, dir + "/nope.txt"));
  datatest::write_bytes(dir + "/x.txt", "hello\n");
  r = test::run_gqe(
      {"data", "prepare", "--input", dir + "/x.txt", "--out", dir + "/o", "--tokenizer", dir + "/none.model"});
  EXPECT_TRUE(test::fails_with(r, dir + "/none.model"));
  r = test::run_gqe({"tokenizer", "train", "--input", dir + "/missing.txt", "--out", dir + "/m"});
  EXPECT_TRUE(test::fails_with(r, dir + "/missing.txt"));
  EXPECT_TRUE(test::exited(test::run_gqe({"data", "frobnicate"}), 2));
}

// The files of a folder and their bytes.
std::map<std::string, std::string> folder_contents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& name : fs::list_dir(dir)) out[name] = fs::read_file(dir + "/" + name);
  return out;
}

TEST_F(CliData, FullDiskDuringForceKeepsTheOldDataset) {
  const std::string dir = test::scratch_dir("data/cli-full-disk");
  std::string small, big;
  for (int i = 0; i < 400; ++i) small += "line " + std::to_string(i) + " of the old corpus\n";
  while (big.size() < (3u << 20)) big += "a longer line of the new corpus that will not fit on the disk\n";
  datatest::write_bytes(dir + "/small.txt", small);
  datatest::write_bytes(dir + "/big.txt", big);
  test::CommandRun old = test::run_gqe({"data", "prepare", "--input", dir + "/small.txt", "--out", dir + "/out",
                                        "--val-fraction", "0.1", "--chunk-bytes", "500", "--quiet"});
  ASSERT_EQ(old.rc, 0) << old.out;
  const auto before = folder_contents(dir + "/out");
  // Files may not grow past 1 MB (ulimit -f counts 512-byte blocks): writing the 6 MB of new shards fails
  // the way a full disk does (EFBIG instead of ENOSPC; SIGXFSZ ignored so that write() reports it).
  test::CommandRun r =
      test::run_gqe({"data", "prepare", "--input", dir + "/big.txt", "--out", dir + "/out", "--force", "--quiet"},
                    test::RunOptions().with_limits("trap '' XFSZ; ulimit -f 2048"));
  EXPECT_TRUE(test::fails_with(r, "error: "));
  EXPECT_EQ(folder_contents(dir + "/out"), before) << "the old dataset changed";
  EXPECT_EQ(test::entries_containing(dir, "prepare.tmp"), std::vector<std::string>{});
}

TEST_F(CliData, ThreadsAboveTheCoreCountAreCappedWithAWarning) {
  const std::string dir = test::scratch_dir("data/cli-threads");
  std::string text;
  for (int i = 0; i < 400; ++i) text += "line " + std::to_string(i) + "\n";
  datatest::write_bytes(dir + "/a.txt", text);
  test::CommandRun r =
      test::run_gqe({"data", "prepare", "--input", dir + "/a.txt", "--out", dir + "/out", "--val-fraction", "0.1",
                     "--chunk-bytes", "100", "--threads", "100000", "--quiet"});
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--threads 100000 is more than the"), std::string::npos) << r.out;
}

TEST_F(CliData, ThreadCreationFailureIsNoCrash) {
  const std::string dir = test::scratch_dir("data/cli-no-threads");
  std::string text;
  for (int i = 0; i < 400; ++i) text += "line " + std::to_string(i) + "\n";
  datatest::write_bytes(dir + "/a.txt", text);
  test::CommandRun ref = test::run_gqe({"data", "prepare", "--input", dir + "/a.txt", "--out", dir + "/ref",
                                        "--val-fraction", "0.1", "--chunk-bytes", "100", "--threads", "2", "--quiet"});
  ASSERT_EQ(ref.rc, 0) << ref.out;
  // Every new thread gets a 64 GiB stack (ulimit -s), which a 32 GiB address space (ulimit -v) cannot map:
  // no worker thread can be created.
  test::CommandRun r = test::run_gqe({"data", "prepare", "--input", dir + "/a.txt", "--out", dir + "/out",
                                      "--val-fraction", "0.1", "--chunk-bytes", "100", "--threads", "2", "--quiet"},
                                     test::RunOptions().with_limits("ulimit -s 67108864 && ulimit -v 33554432"));
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("cannot start worker thread 1 of 2"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("terminate"), std::string::npos) << r.out;
  EXPECT_EQ(folder_contents(dir + "/out"), folder_contents(dir + "/ref")) << "a different dataset without threads";
}

TEST_F(CliData, NonUtf8InputNameFailsBeforeAnyShardIsWritten) {
  const std::string dir = test::scratch_dir("data/cli-utf8");
  const std::string name = dir + "/corpus-\xff.txt";
  datatest::write_bytes(name, "some text\nmore text\n");
  test::CommandRun r =
      test::run_gqe({"data", "prepare", "--input", name, "--out", dir + "/out", "--val-fraction", "0", "--quiet"});
  EXPECT_TRUE(test::fails_with(r, "corpus-\\xFF.txt: input file name is not valid UTF-8"));
  EXPECT_FALSE(fs::exists(dir + "/out")) << "shards were written before the name was checked";
}

}  // namespace
}  // namespace gqe
