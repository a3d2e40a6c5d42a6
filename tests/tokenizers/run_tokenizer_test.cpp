// Tokenizer specs and a run's recorded tokenizer (tokenizers/run_tokenizer.h).
#include "gqe/tokenizers/run_tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "data/data_test_util.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/tokenizers/bpe_tokenizer.h"

#include "test_util.h"

namespace gqe {
namespace {

using test::error_of;

// GPT-2's file pair for a tokenizer of the 256 bytes + "th" + <|endoftext|> (vocab 258).
void write_gpt2_pair(const std::string& vocab, const std::string& merges) {
  nlohmann::json v = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) v[bytes_to_byte_level(std::string(1, char(b)))] = b;
  v["th"] = 256;
  v["<|endoftext|>"] = 257;
  datatest::write_bytes(vocab, v.dump());
  datatest::write_bytes(merges, "#version: 0.2\nt h\n");
}

std::string tokenizer_json_from_pair(const std::string& vocab_path) {
  return R"({"added_tokens": [{"id": 257, "content": "<|endoftext|>", "special": true}], "normalizer": null,
             "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
             "model": {"type": "BPE", "vocab": )" + fs::read_file(vocab_path) + R"(, "merges": [["t", "h"]]}})";
}

TEST(RunTokenizer, SpecsNameFilesOrDirectories) {
  const std::string dir = test::scratch_dir("data/runtok-specs");
  EXPECT_EQ(resolve_tokenizer_files("bytes").kind, TokenizerKind::kBytes);
  EXPECT_EQ(resolve_tokenizer_files("").kind, TokenizerKind::kBytes);
  fs::mkdirs(dir + "/gpt2");
  write_gpt2_pair(dir + "/gpt2/vocab.json", dir + "/gpt2/merges.txt");
  const std::vector<std::string> pair = {dir + "/gpt2/vocab.json", dir + "/gpt2/merges.txt"};
  EXPECT_EQ(resolve_tokenizer_files(dir + "/gpt2").paths, pair);
  EXPECT_EQ(resolve_tokenizer_files(dir + "/gpt2/vocab.json").paths, pair);
  EXPECT_EQ(resolve_tokenizer_files(dir + "/gpt2/merges.txt").paths, pair);
  // Megatron's names: gpt2-vocab.json + gpt2-merges.txt.
  write_gpt2_pair(dir + "/gpt2-vocab.json", dir + "/gpt2-merges.txt");
  EXPECT_EQ(resolve_tokenizer_files(dir + "/gpt2-vocab.json").paths,
            (std::vector<std::string>{dir + "/gpt2-vocab.json", dir + "/gpt2-merges.txt"}));
  datatest::write_bytes(dir + "/gpt2/tokenizer.json", tokenizer_json_from_pair(dir + "/gpt2/vocab.json"));
  const TokenizerFiles tj = resolve_tokenizer_files(dir + "/gpt2");  // tokenizer.json wins in a directory
  EXPECT_EQ(tj.kind, TokenizerKind::kBpe);
  EXPECT_EQ(tj.paths, std::vector<std::string>{dir + "/gpt2/tokenizer.json"});
  EXPECT_EQ(load_tokenizer(dir + "/gpt2")->encode("the"), load_tokenizer(dir + "/gpt2/vocab.json")->encode("the"));
  EXPECT_EQ(load_tokenizer(dir + "/gpt2/vocab.json")->encode("the<|endoftext|>"), (std::vector<int64_t>{256, 'e', 257}));
  datatest::write_bytes(dir + "/m.model", "x");
  EXPECT_EQ(resolve_tokenizer_files(dir + "/m.model").kind, TokenizerKind::kSentencePiece);
  std::string m = error_of([&] { resolve_tokenizer_files(dir + "/nothing.json"); });
  EXPECT_NE(m.find(dir + "/nothing.json: tokenizer not found"), std::string::npos) << m;
  fs::remove_tree(dir + "/gpt2/merges.txt");
  m = error_of([&] { resolve_tokenizer_files(dir + "/gpt2/vocab.json"); });
  EXPECT_NE(m.find(dir + "/gpt2/merges.txt not found"), std::string::npos) << m;
  fs::mkdirs(dir + "/empty");
  m = error_of([&] { resolve_tokenizer_files(dir + "/empty"); });
  EXPECT_NE(m.find("directory holds no tokenizer"), std::string::npos) << m;
}

TEST(RunTokenizer, RecordedBesideTheRunAndFoundFromCheckpoints) {
  const std::string dir = test::scratch_dir("data/runtok-record");
  write_gpt2_pair(dir + "/vocab.json", dir + "/merges.txt");
  datatest::write_bytes(dir + "/src.json", tokenizer_json_from_pair(dir + "/vocab.json"));
  const std::string run = dir + "/run";
  record_run_tokenizer(run, dir + "/src.json");
  EXPECT_TRUE(fs::is_file(run + "/tokenizer.json"));
  const auto rec = nlohmann::json::parse(fs::read_file(run + "/" + kTokenizerRecordFile));
  EXPECT_EQ(rec["kind"], "bpe");
  EXPECT_EQ(rec["vocab_size"], 258);
  EXPECT_EQ(rec["eos_id"], 257);
  // The copy is what counts: the source may go away.
  fs::remove_tree(dir + "/src.json");
  auto tok = load_run_tokenizer(run, 260);
  EXPECT_EQ(tok->name(), run + "/tokenizer.json");
  EXPECT_EQ(tok->encode("the"), (std::vector<int64_t>{256, 'e'}));
  // RUN/checkpoints/step-N finds RUN's record.
  fs::mkdirs(run + "/checkpoints/step-00000003");
  EXPECT_EQ(load_run_tokenizer(run + "/checkpoints/step-00000003", 258)->name(), run + "/tokenizer.json");
  EXPECT_EQ(load_run_tokenizer(run + "/checkpoints/step-00000003/", 258)->name(), run + "/tokenizer.json");
  // --tokenizer overrides the record.
  EXPECT_EQ(load_run_tokenizer(run, 258, "bytes")->name(), "bytes");
  // More ids than the model has: an error naming both.
  std::string m = error_of([&] { load_run_tokenizer(run, 256); });
  EXPECT_NE(m.find("has 258 ids but the checkpoint's vocab_size is 256"), std::string::npos) << m;
  // GPT-2's pair is copied as a pair.
  record_run_tokenizer(dir + "/run2", dir + "/vocab.json");
  EXPECT_EQ(load_run_tokenizer(dir + "/run2", 258)->encode("the"), (std::vector<int64_t>{256, 'e'}));
  EXPECT_TRUE(fs::is_file(dir + "/run2/merges.txt"));
  // Bytes are recorded too.
  record_run_tokenizer(dir + "/run3", "bytes");
  EXPECT_EQ(load_run_tokenizer(dir + "/run3", 512)->name(), "bytes");
  // A recorded file that went missing, and a damaged record, are errors naming them.
  fs::remove_tree(run + "/tokenizer.json");
  m = error_of([&] { load_run_tokenizer(run, 258); });
  EXPECT_NE(m.find("the recorded tokenizer file " + run + "/tokenizer.json is missing"), std::string::npos) << m;
  datatest::write_bytes(run + "/" + kTokenizerRecordFile, R"({"kind": "wordpiece"})");
  m = error_of([&] { load_run_tokenizer(run, 258); });
  EXPECT_NE(m.find("field 'kind'"), std::string::npos) << m;
  // A broken tokenizer is refused before anything is written.
  datatest::write_bytes(dir + "/broken.json", "{}");
  EXPECT_THROW(record_run_tokenizer(dir + "/run4", dir + "/broken.json"), Error);
  EXPECT_FALSE(fs::exists(dir + "/run4/" + kTokenizerRecordFile));
}

TEST(RunTokenizer, RecordedFilesMustLieInsideTheRunFolder) {
  // A run folder may come from elsewhere (a downloaded checkpoint): a link in it must not make another
  // file of this machine the tokenizer.
  const std::string dir = test::scratch_dir("data/runtok-links");
  write_gpt2_pair(dir + "/vocab.json", dir + "/merges.txt");
  datatest::write_bytes(dir + "/src.json", tokenizer_json_from_pair(dir + "/vocab.json"));
  const std::string run = dir + "/run";
  record_run_tokenizer(run, dir + "/src.json");
  fs::remove_tree(run + "/tokenizer.json");
  ASSERT_EQ(::symlink((dir + "/src.json").c_str(), (run + "/tokenizer.json").c_str()), 0);
  std::string m = error_of([&] { load_run_tokenizer(run, 258); });
  EXPECT_NE(m.find(run + "/tokenizer.json: leads outside the folder " + run), std::string::npos) << m;
  // The same for a SentencePiece model found without a record.
  const std::string bare = dir + "/bare";
  fs::mkdirs(bare);
  datatest::write_bytes(dir + "/outside.model", "x");
  ASSERT_EQ(::symlink((dir + "/outside.model").c_str(), (bare + "/tokenizer.model").c_str()), 0);
  m = error_of([&] { run_tokenizer_files(bare, 300); });
  EXPECT_NE(m.find(bare + "/tokenizer.model: leads outside the folder"), std::string::npos) << m;
}

TEST(RunTokenizer, UnrecordedRuns) {
  const std::string dir = test::scratch_dir("data/runtok-none");
  // A byte-vocabulary model without a record: bytes (runs from before the record).
  EXPECT_EQ(load_run_tokenizer(dir, 256)->name(), "bytes");
  // Any other vocabulary without a record: the bytes would be garbage, so ask for --tokenizer.
  const std::string m = error_of([&] { load_run_tokenizer(dir, 50304); });
  EXPECT_NE(m.find(dir + ": no tokenizer is recorded"), std::string::npos) << m;
  EXPECT_NE(m.find("pass --tokenizer"), std::string::npos) << m;
}

}  // namespace
}  // namespace gqe
