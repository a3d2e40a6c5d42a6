#include "gqe/tokenizers/sentencepiece.h"

#include <gtest/gtest.h>

#include <fstream>

#include "data/data_test_util.h"
#include "gqe/core/error.h"
#include "gqe/tokenizers/run_tokenizer.h"
#include "gqe/tokenizers/spm_model.h"
#include "spm_test_util.h"
#include "test_util.h"

namespace gqe {
namespace {

// A small corpus written by the test: varied English-like lines with digits, punctuation and some
// non-ASCII text, repeated with variations so that BPE has merges to learn.
std::string make_corpus() {
  const char* words[] = {"the", "king", "said", "unto", "them", "and", "light", "was", "good", "earth",
                         "heaven", "waters", "day", "night", "people", "land", "God", "created", "every", "thing"};
  std::string text;
  uint64_t x = 99;
  for (int line = 0; line < 1500; ++line) {
    const int n = 5 + line % 9;
    for (int w = 0; w < n; ++w) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      text += words[(x >> 33) % 20];
      text += w + 1 < n ? " " : (line % 3 ? "." : ", verse " + std::to_string(line) + ".");
    }
    if (line % 50 == 0) text += " Über café — naïve";
    text += "\n";
  }
  return text;
}

class SentencePieceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::scratch_dir("data/spm"));
    test::train_test_sentencepiece(*dir_, make_corpus(), 400);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string* dir_;
};
std::string* SentencePieceTest::dir_ = nullptr;

TEST_F(SentencePieceTest, TrainEncodeDecodeRoundTrip) {
  // The process also runs libtorch: if the shim were not isolated, loading it would already have crashed.
  SentencePieceTokenizer tok(*dir_ + "/tok.model");
  EXPECT_EQ(tok.vocab_size(), 400);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.name(), *dir_ + "/tok.model");
  for (const std::string s :
       {std::string("the king said unto them"), std::string("  leading spaces,\ttabs\nand newlines\n\n"),
        std::string("digits 1234567890 and ümlauts ÄÖÜ, emoji \xF0\x9F\x98\x80, CJK \xE4\xB8\xAD\xE6\x96\x87"),
        std::string(""), std::string("x")}) {
    const auto ids = tok.encode(s);
    for (int64_t id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 400);
      EXPECT_NE(id, 0) << "<unk> in '" << s << "' (byte fallback should cover everything)";
    }
    EXPECT_EQ(tok.decode(ids), s);
  }
  // BPE learned merges: common words are far shorter than their bytes.
  const std::string common = "the king said unto them and the light was good";
  EXPECT_LT(tok.encode(common).size(), common.size() / 2);
  // Encoding line-aligned pieces separately equals encoding the whole (no dummy prefix).
  const std::string a = "the king said\n", b = "unto them\n";
  auto ab = tok.encode(a);
  const auto bb = tok.encode(b);
  ab.insert(ab.end(), bb.begin(), bb.end());
  EXPECT_EQ(ab, tok.encode(a + b));
  // Ids past the vocabulary (a padded embedding) decode as U+FFFD instead of failing.
  EXPECT_EQ(tok.decode({500}), "\xEF\xBF\xBD");
}

TEST_F(SentencePieceTest, LoadTokenizerSpec) {
  EXPECT_EQ(load_tokenizer("bytes")->vocab_size(), 256);
  EXPECT_EQ(load_tokenizer(*dir_ + "/tok.model")->vocab_size(), 400);
  EXPECT_THROW(load_tokenizer(*dir_ + "/missing.model"), Error);
  datatest::write_bytes(*dir_ + "/garbage.model", "not a protobuf at all");
  try {
    SentencePieceTokenizer t(*dir_ + "/garbage.model");
    FAIL() << "garbage model loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.model"), std::string::npos) << e.what();
  }
}

TEST(SentencePiece, TrainErrorsAreReported) {
  const std::string dir = test::scratch_dir("data/spm-bad");
  SpmTrainOptions o;
  o.inputs = {dir + "/missing.txt"};
  o.model_prefix = dir + "/x";
  EXPECT_THROW(train_sentencepiece(o), Error);
  datatest::write_bytes(dir + "/tiny.txt", "ab\n");
  o.inputs = {dir + "/tiny.txt"};
  o.vocab_size = 5000;  // far more than such a text can have (SentencePiece 0.1.97 even crashes on it)
  try {
    train_sentencepiece(o);
    FAIL() << "trained a 5000-piece vocabulary on 3 bytes";
  } catch (const Error& e) {
    std::cerr << "expected error: " << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find(dir + "/x"), std::string::npos) << e.what();
  }
  // The process survives and SentencePiece still works afterwards.
  datatest::write_bytes(dir + "/ok.txt", std::string(200, 'a') + "\nabc abd abe\n");
  o.inputs = {dir + "/ok.txt"};
  o.vocab_size = 270;  // 256 byte pieces + 3 specials + 6 characters + a few merges
  EXPECT_NO_THROW(train_sentencepiece(o));
}

// A model trained with gqe's settings is read back from its bytes (io/spm_model.h): the settings it was trained with, and
// every piece as the SentencePiece library itself decodes it.
TEST(SentencePiece, TrainedModelFileReadsBackWithGqesSettings) {
  const std::string dir = test::scratch_dir("data/spm_model");
  std::string text;
  for (int i = 0; i < 400; ++i)
    text += "in the beginning " + std::to_string(i) + " God created the heaven and the earth, caf\xC3\xA9\n";
  const SpmModel m = read_spm_model(test::train_test_sentencepiece(dir, text, 300));
  ASSERT_EQ(m.pieces.size(), 300u);
  EXPECT_EQ(m.model_type, SpmModelType::bpe);
  EXPECT_TRUE(m.byte_fallback);
  EXPECT_FALSE(m.treat_whitespace_as_suffix);
  EXPECT_EQ(m.normalizer_name, "identity");
  EXPECT_FALSE(m.has_precompiled_charsmap);
  EXPECT_FALSE(m.add_dummy_prefix);
  EXPECT_FALSE(m.remove_extra_whitespaces);
  EXPECT_TRUE(m.escape_whitespaces);
  EXPECT_EQ(m.unk_id, 0);
  EXPECT_EQ(m.bos_id, 1);
  EXPECT_EQ(m.eos_id, 2);
  EXPECT_EQ(m.pad_id, -1);
  EXPECT_EQ(m.pieces[0].type, SpmPieceType::unknown);
  EXPECT_EQ(m.pieces[1].piece, "<s>");
  EXPECT_EQ(m.pieces[1].type, SpmPieceType::control);
  EXPECT_EQ(m.pieces[3].piece, "<0x00>");
  EXPECT_EQ(m.pieces[3].type, SpmPieceType::byte);
  // Each normal piece decodes (through the library) to its text with U+2581 as a space.
  SentencePieceTokenizer tok(dir + "/tok.model");
  int normal = 0;
  for (size_t id = 0; id < m.pieces.size(); ++id) {
    if (m.pieces[id].type != SpmPieceType::normal) continue;
    ++normal;
    std::string want = m.pieces[id].piece;
    for (size_t at; (at = want.find("\xE2\x96\x81")) != std::string::npos;) want.replace(at, 3, " ");
    EXPECT_EQ(tok.decode({int64_t(id)}), want) << "piece " << id;
  }
  EXPECT_GT(normal, 30);
  // BPE scores fall with the merge order.
  EXPECT_GT(m.pieces[m.pieces.size() - 40].score, m.pieces.back().score);
}

}  // namespace
}  // namespace gqe
