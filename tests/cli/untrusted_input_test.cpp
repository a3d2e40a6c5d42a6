// Files from elsewhere are untrusted input: a crafted tokenizer, a FIFO or /dev/zero named as an input must
// end `gqe` with exit 1 and a one-line error naming the file, within seconds: never a crash, a hang or an
// allocation of gigabytes. Each case runs the real binary (GQE_BIN) as a process with a deadline.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "../data/data_test_util.h"
#include "process_util.h"
#include "spm_crafted.h"
#include "test_util.h"

namespace gqe {
namespace {

class UntrustedInput : public ::testing::Test {
 protected:
  void SetUp() override { GQE_SKIP_WITHOUT_BIN(); }
};

// A byte-level tokenizer.json whose vocabulary is the 256 bytes (spelled in GPT-2's byte-to-unicode
// alphabet: printable bytes as themselves, the others from U+0100 on) plus `extra` (more JSON members).
std::string byte_tokenizer_json(const std::string& extra, const std::string& added = "[]") {
  std::string vocab;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const int cp = direct ? b : next++;
    std::string s;
    if (cp < 0x80) {
      if (cp == '"' || cp == '\\') s = "\\";
      s.push_back(char(cp));
    } else {
      s.push_back(char(0xC0 | (cp >> 6)));
      s.push_back(char(0x80 | (cp & 0x3F)));
    }
    vocab += (b ? ", \"" : "\"") + s + "\": " + std::to_string(b);
  }
  return R"({"added_tokens": )" + added + R"(, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
            "model": {"type": "BPE", "vocab": {)" + vocab + extra + R"(}, "merges": []}})";
}

TEST_F(UntrustedInput, TokenizerIdNearInt32MaxIsAnErrorNotGigabytes) {
  const std::string dir = test::scratch_dir("data/untrusted-bpe-id");
  datatest::write_bytes(dir + "/in.txt", "hello\n");
  datatest::write_bytes(dir + "/t.json", byte_tokenizer_json(R"(, "huge": 2147483647)"));
  // 8 GB of address space: enough for gqe, far from the 70 GB a table of 2^31 entries takes.
  test::CommandRun r = test::run_gqe({"tokenizer", "bench", "--tokenizer", dir + "/t.json", "--input", dir + "/in.txt"},
                                     test::RunOptions().deadline(60).with_limits("ulimit -v 8000000"));
  EXPECT_TRUE(test::one_line_error(r, {dir + "/t.json: field 'model.vocab.huge': id 2147483647 is out of range"}));
  datatest::write_bytes(dir + "/t.json",
                        byte_tokenizer_json("", R"([{"id": 2147483647, "content": "<|endoftext|>", "special": true}])"));
  r = test::run_gqe({"tokenizer", "bench", "--tokenizer", dir + "/t.json", "--input", dir + "/in.txt"},
                    test::RunOptions().deadline(60).with_limits("ulimit -v 8000000"));
  EXPECT_TRUE(
      test::one_line_error(r, {"field 'added_tokens[0].id': id 2147483647 of token '<|endoftext|>' is out of range"}));
}

TEST_F(UntrustedInput, CraftedSentencePieceCharsmapIsAnErrorNotACrash) {
  const std::string dir = test::scratch_dir("data/untrusted-spm");
  datatest::write_bytes(dir + "/in.txt", "abc abc\n");
  // Without the check, libsentencepiece dies of SIGSEGV normalizing the first character.
  datatest::write_bytes(dir + "/crafted.model", test::crafted_spm_model(test::crashing_charsmap()));
  test::CommandRun r =
      test::run_gqe({"tokenizer", "bench", "--tokenizer", dir + "/crafted.model", "--input", dir + "/in.txt"},
                    test::RunOptions().deadline(60));
  if (r.out.find("SentencePiece support needs") != std::string::npos) GTEST_SKIP() << "no SentencePiece shim: " << r.out;
  EXPECT_TRUE(
      test::one_line_error(r, {dir + "/crafted.model: field 'normalizer_spec.precompiled_charsmap': trie node"}));
  // A well-formed charsmap still loads and encodes.
  datatest::write_bytes(dir + "/ok.model", test::crafted_spm_model(test::valid_charsmap()));
  r = test::run_gqe(
      {"tokenizer", "bench", "--tokenizer", dir + "/ok.model", "--input", dir + "/in.txt", "--repeat", "1"},
      test::RunOptions().deadline(60));
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST_F(UntrustedInput, SplitPatternThatRescansEveryLineIsAnErrorNotAHang) {
  const std::string dir = test::scratch_dir("data/untrusted-regex");
  // Quadratic in a line's length: 200 kB of one letter took minutes. The budget for this text is 1.5 s of
  // CPU time.
  datatest::write_bytes(dir + "/in.txt", std::string(200000, 'a'));
  std::string json = byte_tokenizer_json("");
  const std::string byte_level = R"({"type": "ByteLevel", "add_prefix_space": false})";
  json.replace(json.find(byte_level), byte_level.size(),
               R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\p{L}(?=\\p{L}*\\d)|\\p{L}"},
                  "behavior": "Isolated"}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})");
  datatest::write_bytes(dir + "/t.json", json);
  const auto t0 = std::chrono::steady_clock::now();
  test::CommandRun r = test::run_gqe({"tokenizer", "bench", "--tokenizer", dir + "/t.json", "--input", dir + "/in.txt"},
                                     test::RunOptions().deadline(60));
  EXPECT_TRUE(test::one_line_error(
      r, {dir + "/t.json: field 'pre_tokenizer.pretokenizers[0].pattern': regex needs too much work",
          "on a text of 200000 bytes"}));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60.0);
}

TEST_F(UntrustedInput, FifoDirectoryAndDeviceInputsAreRefusedAtOnce) {
  const std::string dir = test::scratch_dir("data/untrusted-files");
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0644), 0);  // no writer ever opens it
  ::mkdir((dir + "/folder").c_str(), 0755);
  for (const auto& [path, kind] : std::vector<std::pair<std::string, std::string>>{
           {dir + "/fifo", "a FIFO"}, {dir + "/folder", "a directory"}, {"/dev/zero", "a character device"}}) {
    SCOPED_TRACE(path);
    // A text input read whole: before, the FIFO blocked forever and the directory read as empty.
    test::CommandRun r =
        test::run_gqe({"tokenizer", "bench", "--tokenizer", "bytes", "--input", path}, test::RunOptions().deadline(30));
    EXPECT_TRUE(test::one_line_error(r, {path + ": not a regular file (" + kind + ")"}));
  }
  // data prepare streams its inputs: /dev/zero would never end.
  test::CommandRun r =
      test::run_gqe({"data", "prepare", "--input", "/dev/zero", "--tokenizer", "bytes", "--out", dir + "/shards"},
                    test::RunOptions().deadline(30));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("/dev/zero"), std::string::npos) << r.out;
  EXPECT_FALSE(::access((dir + "/shards").c_str(), F_OK) == 0 && ::access((dir + "/shards/meta.json").c_str(), F_OK) == 0);
}

}  // namespace
}  // namespace gqe
