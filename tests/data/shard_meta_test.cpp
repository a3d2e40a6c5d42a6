// The readers' check of meta.json's tokenizer_sha256: shards are read only with the tokenizer that wrote
// them (by content, not by path), older shards without the hash get a warning, a damaged meta.json is an
// error naming it.
#include "gqe/data/shard_meta.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <filesystem>
#include <sstream>

#include "data_test_util.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/sha256.h"
#include "gqe/data/prepare.h"
#include "test_util.h"

namespace gqe {
namespace {

using test::scratch_dir;
using datatest::write_bytes;
using test::error_of;

TEST(ShardMeta, PrepareRecordsTheTokenizerHashAndReadersCompareIt) {
  const std::string dir = scratch_dir("data/meta-prepare");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "line " + std::to_string(i) + " of the text\n";
  write_bytes(dir + "/in.txt", text);
  PrepareOptions o;
  o.inputs = {dir + "/in.txt"};
  o.out_dir = dir + "/out";
  o.val_fraction = 0.25;
  o.chunk_bytes = 256;
  o.threads = 1;
  const PrepareResult r = prepare_data(o);
  const auto meta = nlohmann::json::parse(fs::read_file(dir + "/out/meta.json"));
  EXPECT_EQ(meta["tokenizer_sha256"], "bytes");
  std::ostringstream warn;
  check_shards_tokenizer(r.train_shards, TokenizerFiles{}, &warn);
  check_shards_tokenizer(r.val_shards, TokenizerFiles{}, &warn);
  EXPECT_EQ(warn.str(), "");
  // Byte shards read with a tokenizer file: refused, naming meta.json, both tokenizers and what to do.
  write_bytes(dir + "/spm.model", "not really a model; only its bytes are hashed");
  const std::string e = error_of([&] {
    check_shards_tokenizer(r.val_shards, {TokenizerKind::kSentencePiece, {dir + "/spm.model"}}, &warn);
  });
  EXPECT_NE(e.find(dir + "/out/meta.json: field 'tokenizer_sha256': the shards there (val_000000.tok, ...) were written "
                   "by bytes (the byte tokenizer), but this run's tokenizer is " + dir + "/spm.model (SHA-256 " +
                   sha256_file(dir + "/spm.model") + ")"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("gqe data prepare --tokenizer"), std::string::npos) << e;
}

TEST(ShardMeta, ATokenizerChangedInPlaceIsRefusedAndOldShardsWarn) {
  const std::string dir = scratch_dir("data/meta-retrained");
  write_bytes(dir + "/tok.json", "{\"version\": 1}");
  write_bytes(dir + "/train_000000.tok", "(the check reads meta.json only)");
  const TokenizerFiles tok{TokenizerKind::kBpe, {dir + "/tok.json"}};
  nlohmann::json meta = {{"format", "gqe token shards v1"}, {"tokenizer", "tok.json"},
                         {"tokenizer_sha256", sha256_file(dir + "/tok.json")},
                         {"train", {{"shards", nlohmann::json::array({"train_000000.tok"})}, {"tokens", 3}}}};
  write_bytes(dir + "/meta.json", meta.dump());
  const std::vector<std::string> shards = {dir + "/train_000000.tok"};
  EXPECT_EQ(error_of([&] { check_shards_tokenizer(shards, tok, nullptr); }), "");

  write_bytes(dir + "/tok.json", "{\"version\": 2}");  // retrained: same path
  const std::string e = error_of([&] { check_shards_tokenizer(shards, tok, nullptr); });
  EXPECT_NE(e.find("meta.json: field 'tokenizer_sha256': the shards there (train_000000.tok, ...) were written by tok.json"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("retrained in place"), std::string::npos) << e;
  // A shard that meta.json does not list (an llm.c shard, a file copied in) is not its to judge.
  write_bytes(dir + "/extra.bin", "x");
  EXPECT_EQ(error_of([&] { check_shards_tokenizer({dir + "/extra.bin"}, tok, nullptr); }), "");

  // Shards from before the hash: one warning line per meta.json, and they are accepted.
  meta.erase("tokenizer_sha256");
  write_bytes(dir + "/meta.json", meta.dump());
  std::ostringstream warn;
  EXPECT_EQ(error_of([&] { check_shards_tokenizer({shards[0], shards[0]}, tok, &warn); }), "");
  EXPECT_EQ(warn.str(), "warning: " + dir + "/meta.json records no tokenizer_sha256 (shards from an older gqe data "
                        "prepare): cannot check that " + dir + "/tok.json is tok.json; prepare them again to record it\n");

  // A damaged meta.json names the file and the field.
  write_bytes(dir + "/meta.json", "{\"train\": ");
  EXPECT_NE(error_of([&] { check_shards_tokenizer(shards, tok, nullptr); }).find(dir + "/meta.json: not valid JSON"),
            std::string::npos);
  write_bytes(dir + "/meta.json", R"({"train": {"shards": "train_000000.tok"}})");
  EXPECT_NE(error_of([&] { check_shards_tokenizer(shards, tok, nullptr); }).find(dir + "/meta.json: field 'train.shards'"),
            std::string::npos);
  write_bytes(dir + "/meta.json", R"({"tokenizer_sha256": 7, "train": {"shards": ["train_000000.tok"]}})");
  EXPECT_NE(error_of([&] { check_shards_tokenizer(shards, tok, nullptr); }).find(dir + "/meta.json: field 'tokenizer_sha256'"),
            std::string::npos);
}

TEST(ShardMeta, ShardsTokenizerIsNamedWhileItsFileExists) {
  const std::string dir = test::scratch_dir("data/shardmeta-tokenizer");
  // meta.json names their tokenizer when its file still exists.
  datatest::write_bytes(dir + "/meta.json", R"({"tokenizer": ")" + dir + R"(/meta.json"})");
  EXPECT_EQ(tokenizer_of_shards({dir + "/train_000000.tok"}), dir + "/meta.json");
  datatest::write_bytes(dir + "/meta.json", R"({"tokenizer": "/nonexistent/t.model"})");
  EXPECT_EQ(tokenizer_of_shards({dir + "/train_000000.tok"}), "");
  datatest::write_bytes(dir + "/meta.json", "{broken");
  EXPECT_EQ(tokenizer_of_shards({dir + "/train_000000.tok"}), "");
}

TEST(ShardMeta, ShardsTokenizerIsFoundFromAnyWorkingDirectory) {
  // `data prepare` run in ROOT records "corpus/t.model", relative to ROOT; a run started elsewhere finds it
  // from the shards' folder upwards.
  const std::string root = test::scratch_dir("data/runtok-relative");
  std::filesystem::create_directories(root + "/corpus/shards");
  datatest::write_bytes(root + "/corpus/t.model", "x");
  datatest::write_bytes(root + "/corpus/shards/meta.json", R"({"tokenizer": "corpus/t.model"})");
  const std::string shard = root + "/corpus/shards/train_000000.tok";
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path("/");
  std::string missing;
  const std::string found = tokenizer_of_shards({shard}, &missing);
  std::filesystem::current_path(root);  // from ROOT itself, the path as recorded
  const std::string as_recorded = tokenizer_of_shards({shard});
  std::filesystem::current_path(cwd);
  EXPECT_EQ(found, std::filesystem::path(root + "/corpus/t.model").lexically_normal().string());
  EXPECT_EQ(missing, "");
  EXPECT_EQ(as_recorded, "corpus/t.model");
  // Nowhere to be found: "" and what was looked for, where.
  datatest::write_bytes(root + "/corpus/shards/meta.json", R"({"tokenizer": "gone/t.model"})");
  EXPECT_EQ(tokenizer_of_shards({shard}, &missing), "");
  EXPECT_NE(missing.find("'gone/t.model'"), std::string::npos) << missing;
  EXPECT_NE(missing.find(root + "/corpus/shards"), std::string::npos) << missing;
}

}  // namespace
}  // namespace gqe
