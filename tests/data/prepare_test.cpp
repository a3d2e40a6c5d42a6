#include "gqe/data/prepare.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "data_test_util.h"
#include "test_util.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/data/loader.h"
#include "gqe/tokenizers/sentencepiece.h"
#include "gqe/data/shard.h"
#include "spm_test_util.h"

namespace gqe {
namespace {

using test::entries_containing;
using test::scratch_dir;
using datatest::write_bytes;

std::vector<int64_t> all_tokens(const std::vector<std::string>& shards) {
  std::vector<int64_t> out;
  for (const auto& p : shards) {
    TokenShard s(p);
    const size_t at = out.size();
    out.resize(at + s.num_tokens());
    s.read(0, s.num_tokens(), out.data() + at);
  }
  return out;
}

std::string numbered_lines(int n) {
  std::string t;
  for (int i = 0; i < n; ++i) t += "line " + std::to_string(i) + " of the text\n";
  return t;
}

TEST(Prepare, BytesTextSplitsLosslesslyIntoTrainAndVal) {
  const std::string dir = scratch_dir("data/prep-bytes");
  const std::string text = numbered_lines(3000);  // ~70 KB
  write_bytes(dir + "/a.txt", text);
  PrepareOptions o;
  o.inputs = {dir + "/a.txt"};
  o.out_dir = dir + "/out";
  o.val_fraction = 0.1;
  o.chunk_bytes = 1000;
  o.shard_tokens = 20000;  // several train shards
  const PrepareResult r = prepare_data(o);
  EXPECT_EQ(r.documents, 1);
  EXPECT_EQ(r.vocab_size, 256);
  EXPECT_GT(r.train_shards.size(), 2u);
  EXPECT_EQ(r.val_shards.size(), 1u);
  EXPECT_EQ(r.train_tokens + r.val_tokens, static_cast<int64_t>(text.size()));  // bytes: no EOS
  EXPECT_NEAR(double(r.val_tokens) / double(text.size()), 0.1, 0.03);
  for (const auto& p : r.train_shards) EXPECT_LE(TokenShard(p).num_tokens(), 20000u);
  // Every chunk ends at a line end, so the train and val tokens are whole lines of the input, and the
  // two splits together hold every line exactly once.
  const auto tr = all_tokens(r.train_shards), va = all_tokens(r.val_shards);
  const std::string train_text(tr.begin(), tr.end()), val_text(va.begin(), va.end());
  EXPECT_EQ(train_text.back(), '\n');
  EXPECT_EQ(val_text.back(), '\n');
  std::multiset<std::string> lines_in, lines_out;
  auto split = [](const std::string& s, std::multiset<std::string>& out) {
    size_t a = 0;
    for (size_t b = s.find('\n'); b != std::string::npos; a = b + 1, b = s.find('\n', a)) out.insert(s.substr(a, b - a));
  };
  split(text, lines_in);
  split(train_text, lines_out);
  split(val_text, lines_out);
  EXPECT_EQ(lines_in, lines_out);
  // meta.json describes the output.
  const auto meta = nlohmann::json::parse(fs::read_file(dir + "/out/meta.json"));
  EXPECT_EQ(meta["train"]["tokens"].get<int64_t>(), r.train_tokens);
  EXPECT_EQ(meta["val"]["shards"].size(), 1u);
  EXPECT_EQ(meta["dtype"], "uint16");
  // The shards feed the loader.
  TokenLoader L(r.train_shards, 32, 4, 1);
  EXPECT_EQ(L.total_tokens(), r.train_tokens);
}

TEST(Prepare, OutputDoesNotDependOnThreadCount) {
  const std::string dir = scratch_dir("data/prep-threads");
  write_bytes(dir + "/a.txt", numbered_lines(2000));
  write_bytes(dir + "/b.txt", numbered_lines(500));
  PrepareOptions o;
  o.inputs = {dir + "/a.txt", dir + "/b.txt"};
  o.chunk_bytes = 700;
  o.val_fraction = 0.05;
  o.threads = 1;
  o.out_dir = dir + "/t1";
  const auto r1 = prepare_data(o);
  o.threads = 3;
  o.out_dir = dir + "/t3";
  const auto r3 = prepare_data(o);
  EXPECT_EQ(r1.documents, 2);
  ASSERT_EQ(r1.train_shards.size(), r3.train_shards.size());
  for (size_t i = 0; i < r1.train_shards.size(); ++i)
    EXPECT_EQ(fs::read_file(r1.train_shards[i]), fs::read_file(r3.train_shards[i]));
  EXPECT_EQ(fs::read_file(r1.val_shards[0]), fs::read_file(r3.val_shards[0]));
}

TEST(Prepare, JsonlDocumentsWithSentencePieceAndEos) {
  const std::string dir = scratch_dir("data/prep-jsonl");
  // Train a tokenizer on text the test writes, then prepare FineWeb-Edu-style JSONL with it.
  test::train_test_sentencepiece(dir, numbered_lines(2000), 300);
  std::string jsonl;
  std::vector<std::string> docs;
  for (int i = 0; i < 40; ++i) {
    docs.push_back("document " + std::to_string(i) + "\nline " + std::to_string(i * 7) + " of the text \"quoted\"");
    jsonl += nlohmann::json{{"text", docs.back()}, {"id", i}, {"score", 3.5}}.dump() + "\n";
    if (i == 10) jsonl += "\n";  // blank lines are skipped
  }
  write_bytes(dir + "/docs.jsonl", jsonl);
  PrepareOptions o;
  o.inputs = {dir + "/docs.jsonl"};
  o.tokenizer = dir + "/tok.model";
  o.out_dir = dir + "/out";
  o.val_fraction = 0.25;
  const PrepareResult r = prepare_data(o);
  EXPECT_EQ(r.documents, 40);
  EXPECT_EQ(r.vocab_size, 300);
  SentencePieceTokenizer tok(dir + "/tok.model");
  // Documents are separated by EOS (id 2); decoding each gives back the documents, 10 of them in val.
  auto docs_of = [&](const std::vector<int64_t>& t) {
    std::vector<std::string> out;
    std::vector<int64_t> cur;
    for (int64_t id : t) {
      if (id == 2) {
        out.push_back(tok.decode(cur));
        cur.clear();
      } else {
        cur.push_back(id);
      }
    }
    EXPECT_TRUE(cur.empty()) << "stream does not end with EOS";
    return out;
  };
  const auto tr = docs_of(all_tokens(r.train_shards)), va = docs_of(all_tokens(r.val_shards));
  EXPECT_EQ(va.size(), 10u);
  EXPECT_EQ(tr.size() + va.size(), docs.size());
  std::vector<std::string> merged;
  size_t i = 0, j = 0;
  for (int u = 0; u < 40; ++u) {  // the val documents are those the split rule picks
    const bool is_val = std::floor((u + 1) * 0.25 + 0.5) > std::floor(u * 0.25 + 0.5);
    merged.push_back(is_val ? va.at(j++) : tr.at(i++));
  }
  EXPECT_EQ(merged, docs);
}

TEST(Prepare, ClearErrors) {
  const std::string dir = scratch_dir("data/prep-err");
  PrepareOptions o;
  o.out_dir = dir + "/out";
  o.inputs = {dir + "/missing.txt"};
  EXPECT_THROW(prepare_data(o), Error);
  write_bytes(dir + "/bad.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text field\"}\n");
  o.inputs = {dir + "/bad.jsonl"};
  o.val_fraction = 0;
  try {
    prepare_data(o);
    FAIL() << "missing field accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  write_bytes(dir + "/broken.jsonl", "{\"text\": \"ok\"\n");
  o.inputs = {dir + "/broken.jsonl"};
  o.force = true;
  EXPECT_THROW(prepare_data(o), FormatError);
  // Existing shards are not overwritten without force.
  write_bytes(dir + "/a.txt", numbered_lines(100));
  o.inputs = {dir + "/a.txt"};
  o.out_dir = dir + "/out2";
  o.force = false;
  prepare_data(o);
  EXPECT_THROW(prepare_data(o), Error);
  o.force = true;
  EXPECT_NO_THROW(prepare_data(o));
  // A validation split that would be empty is an error, not a silent surprise.
  o.val_fraction = 0.01;
  o.chunk_bytes = 1 << 20;
  EXPECT_THROW(prepare_data(o), Error);
}

// The files of a folder and their bytes.
std::map<std::string, std::string> folder_contents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& name : fs::list_dir(dir)) out[name] = fs::read_file(dir + "/" + name);
  return out;
}

TEST(Prepare, FailedForceRunKeepsTheOldDatasetAndLeavesNoPartialShards) {
  const std::string dir = scratch_dir("data/prep-force-fail");
  write_bytes(dir + "/a.txt", numbered_lines(2000));
  PrepareOptions o;
  o.inputs = {dir + "/a.txt"};
  o.out_dir = dir + "/out";
  o.val_fraction = 0.1;
  o.chunk_bytes = 1000;
  o.shard_tokens = 10000;
  prepare_data(o);
  write_bytes(dir + "/out/notes.txt", "kept\n");
  const auto before = folder_contents(dir + "/out");
  ASSERT_GT(before.size(), 3u);
  // Over 6 MB of good documents (two 4 MB read batches, so shards are written), then one broken line.
  std::string jsonl;
  for (int i = 0; jsonl.size() < (6u << 20); ++i)
    jsonl += "{\"text\": \"document " + std::to_string(i) + " " + std::string(200, 'x') + "\"}\n";
  jsonl += "{\"text\": \"unterminated\n";
  write_bytes(dir + "/big.jsonl", jsonl);
  o.inputs = {dir + "/big.jsonl"};
  o.shard_tokens = 1 << 20;
  o.force = true;
  EXPECT_THROW(prepare_data(o), FormatError);
  EXPECT_EQ(folder_contents(dir + "/out"), before) << "the old dataset changed";
  EXPECT_TRUE(entries_containing(dir, "prepare.tmp").empty()) << "staging folder left behind";
  // The same failure into a new folder leaves no folder at all (no shards without meta.json).
  o.out_dir = dir + "/fresh";
  EXPECT_THROW(prepare_data(o), FormatError);
  EXPECT_FALSE(fs::exists(dir + "/fresh"));
  EXPECT_TRUE(entries_containing(dir, "prepare.tmp").empty());
}

TEST(Prepare, ForceReplacesEveryOldShardAndKeepsOtherFiles) {
  const std::string dir = scratch_dir("data/prep-force-swap");
  write_bytes(dir + "/a.txt", numbered_lines(3000));
  PrepareOptions o;
  o.inputs = {dir + "/a.txt"};
  o.out_dir = dir + "/out/";  // a trailing slash names the same folder
  o.val_fraction = 0.1;
  o.chunk_bytes = 1000;
  o.shard_tokens = 10000;
  const PrepareResult old_run = prepare_data(o);
  ASSERT_GT(old_run.train_shards.size(), 3u);
  write_bytes(dir + "/out/notes.txt", "kept\n");
  write_bytes(dir + "/b.txt", numbered_lines(300));
  o.inputs = {dir + "/b.txt"};
  o.force = true;
  const PrepareResult r = prepare_data(o);
  std::vector<std::string> want = {"meta.json", "notes.txt"};
  for (const auto* v : {&r.train_shards, &r.val_shards})
    for (const auto& p : *v) {
      EXPECT_TRUE(fs::is_file(p)) << p;
      want.push_back(p.substr(p.rfind('/') + 1));
    }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(fs::list_dir(dir + "/out"), want);
  EXPECT_EQ(all_tokens(r.train_shards).size() + all_tokens(r.val_shards).size(), numbered_lines(300).size());
  EXPECT_EQ(fs::read_file(dir + "/out/notes.txt"), "kept\n");
  EXPECT_TRUE(entries_containing(dir, "prepare.tmp").empty());
}

TEST(Prepare, InputsAreCheckedBeforeAnyWork) {
  const std::string dir = scratch_dir("data/prep-inputs");
  write_bytes(dir + "/a.txt", numbered_lines(100));
  const std::string bad_name = dir + "/b\xff\xfe.txt";  // not UTF-8: meta.json could not record it
  write_bytes(bad_name, numbered_lines(100));
  PrepareOptions o;
  o.inputs = {dir + "/a.txt", bad_name};
  o.out_dir = dir + "/out";
  o.val_fraction = 0;
  try {
    prepare_data(o);
    FAIL() << "a file name that is not UTF-8 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/b\\xFF\\xFE.txt: input file name is not valid UTF-8"),
              std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir + "/out")) << "work was done before the input check";
  // An input that exists but cannot be read fails before any work too.
  if (::geteuid() != 0) {  // root reads anything
    write_bytes(dir + "/secret.txt", "x\n");
    ::chmod((dir + "/secret.txt").c_str(), 0);
    o.inputs = {dir + "/a.txt", dir + "/secret.txt"};
    EXPECT_THROW(prepare_data(o), Error);
    EXPECT_FALSE(fs::exists(dir + "/out"));
  }
}

TEST(Prepare, ThreadsAboveTheCoreCountGiveTheSameOutput) {
  const std::string dir = scratch_dir("data/prep-many-threads");
  write_bytes(dir + "/a.txt", numbered_lines(2000));
  PrepareOptions o;
  o.inputs = {dir + "/a.txt"};
  o.val_fraction = 0.1;
  o.chunk_bytes = 500;
  o.threads = 1;
  o.out_dir = dir + "/one";
  const PrepareResult one = prepare_data(o);
  o.threads = 1000;
  o.out_dir = dir + "/many";
  const PrepareResult many = prepare_data(o);
  EXPECT_EQ(all_tokens(one.train_shards), all_tokens(many.train_shards));
  EXPECT_EQ(all_tokens(one.val_shards), all_tokens(many.val_shards));
}

}  // namespace
}  // namespace gqe
