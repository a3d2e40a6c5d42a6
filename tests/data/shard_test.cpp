#include "gqe/data/shard.h"

#include <gtest/gtest.h>

#include <cstring>

#include "data_test_util.h"
#include "test_util.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/data/loader.h"

namespace gqe {
namespace {

using test::scratch_dir;
using datatest::write_bytes;

std::vector<int64_t> sample_tokens(size_t n, int64_t vocab) {
  std::vector<int64_t> t(n);
  uint64_t x = 12345;
  for (auto& v : t) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<int64_t>((x >> 33) % static_cast<uint64_t>(vocab));
  }
  return t;
}

std::vector<int64_t> read_all(const TokenShard& s) {
  std::vector<int64_t> out(s.num_tokens());
  s.read(0, s.num_tokens(), out.data());
  return out;
}

// Expects constructing a TokenShard on `path` to throw FormatError whose message names the file and
// contains `what`.
void expect_format_error(const std::string& path, const std::string& what) {
  try {
    TokenShard s(path);
    FAIL() << path << ": expected FormatError containing '" << what << "'";
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(Shard, TokenChecksumMatchesItsDefinitionAndStreams) {
  // By hand, from the definition in docs/data.md: words 0x01 and 0x02 (9 bytes: the second zero-padded),
  // then the byte count 9.
  auto mix = [](uint64_t h, uint64_t w) {
    h = (h ^ w) * 1099511628211ull;
    return h ^ (h >> 32);
  };
  const unsigned char bytes[9] = {1, 0, 0, 0, 0, 0, 0, 0, 2};
  EXPECT_EQ(token_checksum(bytes, 9), mix(mix(mix(kFnvOffset, 1), 2), 9));
  EXPECT_EQ(token_checksum(bytes, 0), mix(kFnvOffset, 0));
  // Fed in pieces of any size it gives the same value.
  std::string data(1000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 37 + 11);
  const uint64_t whole = token_checksum(data.data(), data.size());
  for (size_t piece : {1, 3, 7, 8, 13, 999}) {
    TokenChecksum c;
    for (size_t i = 0; i < data.size(); i += piece) c.update(data.data() + i, std::min(piece, data.size() - i));
    EXPECT_EQ(c.value(), whole) << piece;
  }
  // Any single flipped bit changes it (high bits of a word included), and so does a moved zero byte.
  for (size_t bit = 0; bit < 64; ++bit) {
    std::string f = data;
    f[8 * 5 + bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_NE(token_checksum(f.data(), f.size()), whole) << bit;
  }
  EXPECT_NE(token_checksum(data.data(), 999), token_checksum((data.substr(0, 999) + '\0').data(), 1000));
}

TEST(Shard, GqeRoundTripUInt16AndUInt32) {
  const std::string dir = scratch_dir("data/shard-rt");
  for (TokenDtype dt : {TokenDtype::kUInt16, TokenDtype::kUInt32}) {
    const int64_t vocab = dt == TokenDtype::kUInt16 ? 65536 : 100000;
    auto toks = sample_tokens(5000, vocab);
    toks[0] = vocab - 1;  // the largest id survives the narrow dtype
    const std::string p = dir + "/a" + std::to_string(int(dt)) + ".tok";
    write_token_shard(p, toks, dt, static_cast<uint64_t>(vocab));
    EXPECT_EQ(fs::read_file(p).size(), kShardHeaderBytes + toks.size() * static_cast<size_t>(dt));
    TokenShard s(p);
    EXPECT_EQ(s.format(), ShardFormat::kGqe);
    EXPECT_EQ(s.dtype(), dt);
    EXPECT_EQ(s.num_tokens(), toks.size());
    EXPECT_EQ(s.vocab_size(), static_cast<uint64_t>(vocab));
    EXPECT_EQ(read_all(s), toks);
    EXPECT_EQ(s.token(1234), static_cast<uint32_t>(toks[1234]));
    std::vector<int64_t> part(10);
    s.read(4990, 10, part.data());
    EXPECT_EQ(part, std::vector<int64_t>(toks.end() - 10, toks.end()));
    EXPECT_THROW(s.read(4995, 6, part.data()), Error);
  }
}

TEST(Shard, StreamingWriterMatchesOneShotAndLeavesNoTempFiles) {
  const std::string dir = scratch_dir("data/shard-stream");
  const auto toks = sample_tokens(3'000'000, 50000);  // > 1 MiB buffer: several flushes
  ShardWriter w(dir + "/s.tok", TokenDtype::kUInt16, 50000);
  for (size_t i = 0; i < toks.size(); i += 777) w.append(toks.data() + i, std::min<size_t>(777, toks.size() - i));
  EXPECT_EQ(w.num_tokens(), toks.size());
  w.finish();
  write_token_shard(dir + "/o.tok", toks, TokenDtype::kUInt16, 50000);
  EXPECT_EQ(fs::read_file(dir + "/s.tok"), fs::read_file(dir + "/o.tok"));
  EXPECT_EQ(read_all(TokenShard(dir + "/s.tok")), toks);
  EXPECT_EQ(test::entries_containing(dir, "tmp"), std::vector<std::string>{}) << "temp file left behind";
}

TEST(Shard, WriterRejectsOutOfVocabAndEmptyAndCleansUp) {
  const std::string dir = scratch_dir("data/shard-bad-write");
  {
    ShardWriter w(dir + "/x.tok", TokenDtype::kUInt16, 100);
    EXPECT_THROW(w.append({5, 100}), Error);
    EXPECT_THROW(w.append({-1}), Error);
  }
  {
    ShardWriter w(dir + "/y.tok", TokenDtype::kUInt16, 100);
    EXPECT_THROW(w.finish(), Error);
  }
  EXPECT_THROW(ShardWriter(dir + "/z.tok", TokenDtype::kUInt16, 70000), Error);
  EXPECT_EQ(fs::list_dir(dir), std::vector<std::string>{}) << "writer left files behind";
}

TEST(Shard, LlmcRoundTripBothVersions) {
  const std::string dir = scratch_dir("data/shard-llmc");
  const auto toks16 = sample_tokens(3001, 50257);
  write_llmc_shard(dir + "/gpt2.bin", toks16, TokenDtype::kUInt16);
  const std::string bytes = fs::read_file(dir + "/gpt2.bin");
  ASSERT_EQ(bytes.size(), 1024 + 2 * toks16.size());
  int32_t header[3];
  std::memcpy(header, bytes.data(), sizeof header);
  EXPECT_EQ(header[0], 20240520);
  EXPECT_EQ(header[1], 1);
  EXPECT_EQ(header[2], 3001);
  TokenShard s(dir + "/gpt2.bin");
  EXPECT_EQ(s.format(), ShardFormat::kLlmc);
  EXPECT_EQ(s.dtype(), TokenDtype::kUInt16);
  EXPECT_EQ(s.vocab_size(), 0u);
  EXPECT_EQ(read_all(s), toks16);

  const auto toks32 = sample_tokens(999, 128256);
  write_llmc_shard(dir + "/llama3.bin", toks32, TokenDtype::kUInt32);
  TokenShard s32(dir + "/llama3.bin");
  EXPECT_EQ(s32.dtype(), TokenDtype::kUInt32);
  EXPECT_EQ(read_all(s32), toks32);
}

// An llm.c shard built by hand, byte by byte, as llm.c's Python writer lays it out (independent of
// write_llmc_shard).
TEST(Shard, LlmcHandBuiltFile) {
  const std::string dir = scratch_dir("data/shard-llmc-hand");
  std::string bytes(1024 + 6, '\0');
  const int32_t h[3] = {20240520, 1, 3};
  std::memcpy(bytes.data(), h, sizeof h);
  const uint16_t t[3] = {50256, 0, 1234};
  std::memcpy(bytes.data() + 1024, t, sizeof t);
  write_bytes(dir + "/h.bin", bytes);
  EXPECT_EQ(read_all(TokenShard(dir + "/h.bin")), (std::vector<int64_t>{50256, 0, 1234}));
}

TEST(Shard, CorruptFilesGiveClearErrors) {
  const std::string dir = scratch_dir("data/shard-corrupt");
  const auto toks = sample_tokens(1000, 4096);
  write_token_shard(dir + "/good.tok", toks, TokenDtype::kUInt16, 4096);
  const std::string good = fs::read_file(dir + "/good.tok");
  write_llmc_shard(dir + "/good.bin", toks);
  const std::string good_llmc = fs::read_file(dir + "/good.bin");

  write_bytes(dir + "/empty.tok", "");
  expect_format_error(dir + "/empty.tok", "empty file");

  write_bytes(dir + "/magic.tok", "PK\x03\x04 this is a zip, not tokens" + std::string(100, 'x'));
  expect_format_error(dir + "/magic.tok", "not a token shard");

  write_bytes(dir + "/trunc.tok", good.substr(0, good.size() - 3));
  expect_format_error(dir + "/trunc.tok", "truncated");
  write_bytes(dir + "/trunc-header.tok", good.substr(0, 30));
  expect_format_error(dir + "/trunc-header.tok", "truncated");
  write_bytes(dir + "/trunc.bin", good_llmc.substr(0, good_llmc.size() - 2));
  expect_format_error(dir + "/trunc.bin", "truncated");
  write_bytes(dir + "/trunc-header.bin", good_llmc.substr(0, 500));
  expect_format_error(dir + "/trunc-header.bin", "truncated");
  write_bytes(dir + "/trailing.tok", good + "xx");
  expect_format_error(dir + "/trailing.tok", "trailing bytes");

  std::string flipped = good;
  flipped[kShardHeaderBytes + 700] ^= 0x10;  // one bit of token data
  write_bytes(dir + "/flip.tok", flipped);
  expect_format_error(dir + "/flip.tok", "corrupted token data");
  std::string bad_header = good;
  bad_header[16] ^= 0x01;  // token count
  write_bytes(dir + "/hdr.tok", bad_header);
  expect_format_error(dir + "/hdr.tok", "corrupted gqe shard header");

  // A header that says 0 tokens (valid checksums, so the emptiness itself is reported).
  std::string zero_llmc(1024, '\0');
  const int32_t h[3] = {20240520, 1, 0};
  std::memcpy(zero_llmc.data(), h, sizeof h);
  write_bytes(dir + "/zero.bin", zero_llmc);
  expect_format_error(dir + "/zero.bin", "empty token shard");
  std::string v2 = good_llmc;
  v2[4] = 2;  // unknown llm.c version
  write_bytes(dir + "/v2.bin", v2);
  expect_format_error(dir + "/v2.bin", "version 2");

  // A recorded vocabulary the tokens cannot spell (checksums made right, as a crafted file would have).
  for (const uint64_t vocab : {uint64_t(65537), ~uint64_t(0)}) {
    std::string v = good;
    std::memcpy(v.data() + 24, &vocab, 8);
    const uint64_t hsum = fnv1a64(v.data(), 40);
    std::memcpy(v.data() + 40, &hsum, 8);
    write_bytes(dir + "/vocab.tok", v);
    expect_format_error(dir + "/vocab.tok", "records a vocabulary of " + std::to_string(vocab) +
                                                ", more than its 16-bit tokens can hold (at most 65536)");
  }

  EXPECT_THROW(TokenShard(dir + "/missing.tok"), Error);
  EXPECT_THROW(TokenShard{dir}, Error);  // a directory
}

TEST(Shard, TokenIdsAreCheckedAgainstTheModelVocabularyNamingShardOffsetAndId) {
  const std::string dir = scratch_dir("data/shard-vocab");
  std::vector<int64_t> tokens(100, 7);
  tokens[61] = 300;
  write_llmc_shard(dir + "/a.bin", tokens);
  const TokenShard shard(dir + "/a.bin");
  EXPECT_NO_THROW(check_token_ids(shard, 301));
  try {
    check_token_ids(shard, 256);
    FAIL() << "accepted";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/a.bin: token id 300 is outside the model's vocabulary of 256 (token "
                                           "offset 61, byte offset 1146; were the data and the model made with "
                                           "different tokenizers?)");
  }
  // The loader checks every shard it reads.
  write_llmc_shard(dir + "/b.bin", std::vector<int64_t>(100, 3));
  TokenLoader loader({dir + "/b.bin", dir + "/a.bin"}, 8, 2, 1);
  EXPECT_NO_THROW(loader.check_token_ids(301));
  EXPECT_THROW(loader.check_token_ids(256), FormatError);
}

TEST(Shard, ResolvePaths) {
  const std::string dir = scratch_dir("data/shard-resolve");
  for (const char* n : {"train_0001.tok", "train_0000.tok", "val_0000.tok"})
    write_token_shard(dir + "/" + n, {1, 2, 3}, TokenDtype::kUInt16, 10);
  write_bytes(dir + "/notes.txt", "x");
  EXPECT_EQ(resolve_shard_paths(dir + "/train_*.tok"),
            (std::vector<std::string>{dir + "/train_0000.tok", dir + "/train_0001.tok"}));
  EXPECT_EQ(resolve_shard_paths(dir).size(), 3u);
  EXPECT_EQ(resolve_shard_paths(dir + "/val_0000.tok," + dir + "/train_0000.tok").size(), 2u);
  EXPECT_THROW(resolve_shard_paths(dir + "/nothing_*.tok"), Error);
  EXPECT_THROW(resolve_shard_paths(dir + "/missing.tok"), Error);
}

}  // namespace
}  // namespace gqe
