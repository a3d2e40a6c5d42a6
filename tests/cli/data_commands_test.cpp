// `gqe tokenizer train` and `gqe data prepare` end to end through the executable (GQE_BIN).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "data/data_test_util.h"
#include "gqe/data/loader.h"
#include "gqe/data/sentencepiece.h"

namespace gqe {
namespace {

struct CliRun {
  int code;
  std::string output;  // stdout + stderr
};

CliRun run_gqe(const std::string& args) {
  const std::string cmd = std::string(std::getenv("GQE_BIN")) + " " + args + " 2>&1";
  CliRun r{-1, ""};
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class CliData : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("GQE_BIN");
    if (!bin || ::access(bin, X_OK) != 0) GTEST_SKIP() << "GQE_BIN not set or not built";
  }
};

TEST_F(CliData, TrainTokenizerThenPrepareShards) {
  const std::string dir = datatest::scratch("cli");
  std::string text;
  for (int i = 0; i < 800; ++i) text += "And it came to pass in verse " + std::to_string(i) + " that they went forth.\n";
  datatest::write_bytes(dir + "/c.txt", text);
  CliRun t = run_gqe("tokenizer train --input " + dir + "/c.txt --out " + dir + "/tok/m --vocab-size 300 --threads 1");
  ASSERT_EQ(t.code, 0) << t.output;
  EXPECT_NE(t.output.find("300 pieces"), std::string::npos) << t.output;
  CliRun p = run_gqe("data prepare --input " + dir + "/c.txt --out " + dir + "/sh --tokenizer " + dir +
              "/tok/m.model --val-fraction 0.1 --chunk-bytes 2000 --quiet");
  ASSERT_EQ(p.code, 0) << p.output;
  EXPECT_NE(p.output.find("train: "), std::string::npos) << p.output;
  TokenLoader L({dir + "/sh/train_000000.tok"}, 16, 2, 0);
  EXPECT_EQ(L.vocab_size(), 300u);
  // JSONL input (FineWeb-Edu style) for both commands, into a directory that does not exist yet.
  std::string jsonl;
  for (int i = 0; i < 300; ++i)
    jsonl += "{\"text\": \"document " + std::to_string(i) + " says hello\\nand goodbye\", \"score\": 3}\n";
  datatest::write_bytes(dir + "/d.jsonl", jsonl);
  CliRun tj = run_gqe("tokenizer train " + dir + "/d.jsonl --out " + dir + "/new/dir/j --vocab-size 290 --threads 1");
  ASSERT_EQ(tj.code, 0) << tj.output;
  CliRun pj = run_gqe("data prepare " + dir + "/d.jsonl --out " + dir + "/shj --tokenizer " + dir +
               "/new/dir/j.model --val-fraction 0.1 --quiet");
  ASSERT_EQ(pj.code, 0) << pj.output;
  EXPECT_NE(pj.output.find("300 documents"), std::string::npos) << pj.output;
  EXPECT_EQ(std::system(("ls " + dir + "/new/dir | grep -q tmp").c_str()) == 0, false) << "temp file left";
  // Running again without --force refuses to overwrite.
  CliRun again = run_gqe("data prepare --input " + dir + "/c.txt --out " + dir + "/sh --quiet");
  EXPECT_EQ(again.code, 1) << again.output;
  EXPECT_NE(again.output.find("--force"), std::string::npos) << again.output;
}

TEST_F(CliData, BadInputsExitNonZeroNamingTheFile) {
  const std::string dir = datatest::scratch("cli-bad");
  CliRun r = run_gqe("data prepare --input " + dir + "/nope.txt --out " + dir + "/o");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(dir + "/nope.txt"), std::string::npos) << r.output;
  datatest::write_bytes(dir + "/x.txt", "hello\n");
  r = run_gqe("data prepare --input " + dir + "/x.txt --out " + dir + "/o --tokenizer " + dir + "/none.model");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(dir + "/none.model"), std::string::npos) << r.output;
  r = run_gqe("tokenizer train --input " + dir + "/missing.txt --out " + dir + "/m");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(dir + "/missing.txt"), std::string::npos) << r.output;
  r = run_gqe("data frobnicate");
  EXPECT_EQ(r.code, 2);
}

}  // namespace
}  // namespace gqe
