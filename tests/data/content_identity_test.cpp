// Content identities of tokenizers and data files: equal bytes, equal identity; other bytes of the same
// name and size, another identity.
#include "gqe/data/content_identity.h"

#include <gtest/gtest.h>

#include "data_test_util.h"
#include "test_util.h"
#include "gqe/core/sha256.h"
#include "gqe/data/shard.h"

namespace gqe {
namespace {

using test::scratch_dir;
using datatest::write_bytes;

TEST(ContentIdentity, TokenizerIsTheHashOfEachOfItsFiles) {
  const std::string dir = scratch_dir("data/identity-tok");
  write_bytes(dir + "/vocab.json", "{}");
  write_bytes(dir + "/merges.txt", "#version: 0.2\n");
  EXPECT_EQ(tokenizer_sha256(TokenizerFiles{}), "bytes");
  EXPECT_EQ(tokenizer_sha256({TokenizerKind::kBpe, {dir + "/vocab.json", dir + "/merges.txt"}}),
            sha256_file(dir + "/vocab.json") + " " + sha256_file(dir + "/merges.txt"));
  EXPECT_EQ(describe_tokenizer_files({TokenizerKind::kBpe, {dir + "/vocab.json", dir + "/merges.txt"}}),
            dir + "/vocab.json + " + dir + "/merges.txt");
}

TEST(ContentIdentity, DataOfTheSameNamesAndSizesDiffersByContent) {
  const std::string a = scratch_dir("data/identity-a"), b = scratch_dir("data/identity-b");
  write_bytes(a + "/text.txt", "And God said, Let there be light.\n");
  write_bytes(b + "/text.txt", "And God said, Let there be night.\n");
  EXPECT_NE(data_sha256({a + "/text.txt"}), data_sha256({b + "/text.txt"}));
  write_bytes(b + "/text.txt", "And God said, Let there be light.\n");
  EXPECT_EQ(data_sha256({a + "/text.txt"}), data_sha256({b + "/text.txt"}));
  // gqe shards by their header, whose token checksum opening verifies; order matters.
  write_token_shard(a + "/s.tok", {1, 2, 3, 4}, TokenDtype::kUInt16, 300);
  write_token_shard(b + "/s.tok", {1, 2, 3, 5}, TokenDtype::kUInt16, 300);
  EXPECT_NE(data_sha256({a + "/s.tok"}), data_sha256({b + "/s.tok"}));
  write_token_shard(b + "/s.tok", {1, 2, 3, 4}, TokenDtype::kUInt16, 300);
  EXPECT_EQ(data_sha256({a + "/s.tok"}), data_sha256({b + "/s.tok"}));
  EXPECT_NE(data_sha256({a + "/s.tok", a + "/text.txt"}), data_sha256({a + "/text.txt", a + "/s.tok"}));
  // llm.c shards carry no checksum: their bytes are hashed.
  write_llmc_shard(a + "/s.bin", {7, 8, 9});
  write_llmc_shard(b + "/s.bin", {7, 8, 10});
  EXPECT_NE(data_sha256({a + "/s.bin"}), data_sha256({b + "/s.bin"}));
}

}  // namespace
}  // namespace gqe
