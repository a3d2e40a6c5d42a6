// Byte-level BPE (tokenizers/bpe_tokenizer.h): a hand-written tokenizer.json checks the algorithm and the file
// errors without Python; with GQE_PYTHON, tokenizers trained by Hugging Face `tokenizers` itself (GPT-2
// style and LLaMA-3 style) must give the same ids as `tokenizers` on the whole KJV text plus a varied tail.
#include "gqe/tokenizers/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/data_test_util.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/tokenizers/stream_decoder.h"

#include "process_util.h"
#include "test_util.h"

namespace gqe {
namespace {

using test::error_of;

// A byte-level tokenizer.json: all 256 bytes, then the merges given (as raw-byte pairs), added tokens.
std::string tiny_tokenizer_json(const std::vector<std::pair<std::string, std::string>>& merges,
                                const std::string& pre_tokenizer, bool array_merges = true,
                                const std::string& added = R"([{"id": 300, "content": "<|endoftext|>", "special": true}])") {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, char(b)))] = b;
  nlohmann::json m = nlohmann::json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    const std::string A = bytes_to_byte_level(a), B = bytes_to_byte_level(b);
    if (!vocab.contains(A + B)) vocab[A + B] = next++;
    if (array_merges) m.push_back({A, B});
    else m.push_back(A + " " + B);
  }
  return R"({"version": "1.0", "added_tokens": )" + added + R"(, "normalizer": null, "pre_tokenizer": )" +
         pre_tokenizer + R"(, "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "dropout": null, "vocab": )" +
         vocab.dump() + R"(, "merges": )" + m.dump() + "}}";
}

const char* kByteLevel = R"({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})";

std::string write_json(const std::string& dir, const std::string& name, const std::string& text) {
  datatest::write_bytes(dir + "/" + name, text);
  return dir + "/" + name;
}

TEST(BpeTokenizer, MergesByRankAddedTokensAndDecode) {
  const std::string dir = test::scratch_dir("data/bpe-tiny");
  // Ranks: "t"+"h", "th"+"e", " "+"the", "a"+"a".
  const std::string path = write_json(
      dir, "tokenizer.json", tiny_tokenizer_json({{"t", "h"}, {"th", "e"}, {" ", "the"}, {"a", "a"}}, kByteLevel));
  auto tok = BpeTokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tok->vocab_size(), 301);
  EXPECT_EQ(tok->eos_id(), 300);
  EXPECT_EQ(tok->token_id("th"), 256);
  EXPECT_EQ(tok->token_id("<|endoftext|>"), 300);
  // "the the": GPT-2's regex gives "the", " the" -> [the], [ the].
  EXPECT_EQ(tok->encode("the the"), (std::vector<int64_t>{257, 258}));
  // Same-rank pairs merge leftmost first: "aaa" -> [aa][a]; "aaaa" -> [aa][aa].
  EXPECT_EQ(tok->encode("aaa"), (std::vector<int64_t>{259, 'a'}));
  EXPECT_EQ(tok->encode("aaaa"), (std::vector<int64_t>{259, 259}));
  // Special tokens are cut out before pre-tokenization, also inside words.
  EXPECT_EQ(tok->encode("x<|endoftext|>the"), (std::vector<int64_t>{'x', 300, 257}));
  // Any bytes, also invalid UTF-8, round-trip.
  for (const std::string s : {std::string("the \xff\xfe\x80 the\xe2\x82"), std::string("caf\xc3\xa9 \xf0\x9f\x98\x80!"),
                              std::string("  \t\n\n  x"), std::string("")})
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  EXPECT_EQ(tok->decode({256, 300, 999, -1}), std::string("th<|endoftext|>\xEF\xBF\xBD\xEF\xBF\xBD"));
  // The "a b" merge spelling reads the same.
  auto old = BpeTokenizer::from_tokenizer_json(write_json(
      dir, "old.json", tiny_tokenizer_json({{"t", "h"}, {"th", "e"}, {" ", "the"}, {"a", "a"}}, kByteLevel, false)));
  EXPECT_EQ(old->encode("the the aaa"), tok->encode("the the aaa"));
}

TEST(BpeTokenizer, SplitBehaviorsAndPrefixSpace) {
  const std::string dir = test::scratch_dir("data/bpe-split");
  auto make = [&](const std::string& pre) {
    return BpeTokenizer::from_tokenizer_json(write_json(dir, "t.json", tiny_tokenizer_json({{"a", "b"}}, pre, true, "[]")));
  };
  auto seq = [](const std::string& split) {
    return R"({"type": "Sequence", "pretokenizers": [)" + split +
           R"(, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})";
  };
  auto split = [](const std::string& behavior, bool invert = false) {
    return std::string(R"({"type": "Split", "pattern": {"String": "-"}, "behavior": ")") + behavior +
           R"(", "invert": )" + (invert ? "true" : "false") + "}";
  };
  // "ab-ab": the merge a+b applies within pieces only; the pieces tell the behaviors apart.
  const std::string text = "a-b";
  EXPECT_EQ(make(seq(split("Isolated")))->encode(text), (std::vector<int64_t>{'a', '-', 'b'}));
  EXPECT_EQ(make(seq(split("Removed")))->encode(text), (std::vector<int64_t>{'a', 'b'}));
  EXPECT_EQ(make(seq(split("Removed", true)))->encode(text), (std::vector<int64_t>{'-'}));
  EXPECT_EQ(make(seq(split("Contiguous")))->encode("ab"), (std::vector<int64_t>{256}));
  EXPECT_EQ(make(seq(R"({"type": "Split", "pattern": {"Regex": "-"}, "behavior": "MergedWithNext"})"))->encode("a-b"),
            (std::vector<int64_t>{'a', '-', 'b'}));
  EXPECT_EQ(make(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": false})")->encode("ab"),
            (std::vector<int64_t>{' ', 256}));
  // Without splitting, a+b merges across what the regex would separate.
  EXPECT_EQ(make(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})")->encode("ab ab"),
            (std::vector<int64_t>{256, ' ', 256}));
}

TEST(BpeTokenizer, BadFilesNameFileAndField) {
  const std::string dir = test::scratch_dir("data/bpe-bad");
  auto err = [&](const std::string& json) {
    const std::string p = write_json(dir, "bad.json", json);
    return error_of([&] { BpeTokenizer::from_tokenizer_json(p); });
  };
  const std::string good = tiny_tokenizer_json({{"a", "b"}}, kByteLevel);
  auto replace = [&](std::string s, const std::string& a, const std::string& b) {
    const size_t at = s.find(a);
    EXPECT_NE(at, std::string::npos) << a;
    return at == std::string::npos ? s : s.replace(at, a.size(), b);
  };
  std::string m = err("{not json");
  EXPECT_NE(m.find(dir + "/bad.json"), std::string::npos) << m;
  EXPECT_NE(m.find("not valid JSON"), std::string::npos) << m;
  m = err(replace(good, R"("merges": )", R"("mergez": )"));
  EXPECT_NE(m.find("field 'model.merges': missing"), std::string::npos) << m;
  m = err(replace(good, R"(["a","b"])", R"(["a","zz"])"));
  EXPECT_NE(m.find("field 'model.merges[0]': token 'zz' is not in the vocabulary"), std::string::npos) << m;
  m = err(replace(good, R"(["a","b"])", R"("a b c")"));
  EXPECT_NE(m.find("field 'model.merges[0]'"), std::string::npos) << m;
  m = err(replace(good, R"("type": "BPE")", R"("type": "WordPiece")"));
  EXPECT_NE(m.find("field 'model.type'"), std::string::npos) << m;
  m = err(replace(good, R"("type": "ByteLevel", "add_prefix_space")", R"("type": "Whitespace", "add_prefix_space")"));
  EXPECT_NE(m.find("field 'pre_tokenizer.type': 'Whitespace' is not supported"), std::string::npos) << m;
  m = err(replace(good, kByteLevel, R"({"type": "Split", "pattern": {"Regex": "(?<x"}, "behavior": "Isolated"})"));
  EXPECT_NE(m.find("field 'pre_tokenizer.pattern': regex does not compile"), std::string::npos) << m;
  m = err(replace(good, kByteLevel, R"({"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Isolated"})"));
  EXPECT_NE(m.find("has no ByteLevel step"), std::string::npos) << m;
  m = err(replace(good, R"("normalizer": null)", R"("normalizer": {"type": "NFKC"})"));
  EXPECT_NE(m.find("field 'normalizer'"), std::string::npos) << m;
  m = err(replace(good, R"("id": 300)", R"("id": -4)"));
  EXPECT_NE(m.find("field 'added_tokens[0].id'"), std::string::npos) << m;
  m = err(replace(good, R"("dropout": null)", R"("dropout": 0.1)"));
  EXPECT_NE(m.find("field 'model.dropout'"), std::string::npos) << m;
  m = error_of([&] { BpeTokenizer::from_tokenizer_json(dir + "/missing.json"); });
  EXPECT_NE(m.find(dir + "/missing.json: tokenizer file not found"), std::string::npos) << m;

  // GPT-2's pair: errors name vocab.json or merges.txt and the line.
  datatest::write_bytes(dir + "/vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  datatest::write_bytes(dir + "/merges.txt", "#version: 0.2\na b\nb\n");
  m = error_of([&] { BpeTokenizer::from_vocab_merges(dir + "/vocab.json", dir + "/merges.txt"); });
  EXPECT_NE(m.find(dir + "/merges.txt:3: expected \"left right\""), std::string::npos) << m;
  datatest::write_bytes(dir + "/merges.txt", "#version: 0.2\na b\nb a\n");
  m = error_of([&] { BpeTokenizer::from_vocab_merges(dir + "/vocab.json", dir + "/merges.txt"); });
  EXPECT_NE(m.find(dir + "/merges.txt:3: merged token 'ba' is not in the vocabulary"), std::string::npos) << m;
  datatest::write_bytes(dir + "/vocab.json", R"(["a"])");
  m = error_of([&] { BpeTokenizer::from_vocab_merges(dir + "/vocab.json", dir + "/merges.txt"); });
  EXPECT_NE(m.find(dir + "/vocab.json: expected a JSON object"), std::string::npos) << m;
  datatest::write_bytes(dir + "/vocab.json", R"({"a": 0, "b": "one"})");
  m = error_of([&] { BpeTokenizer::from_vocab_merges(dir + "/vocab.json", dir + "/merges.txt"); });
  EXPECT_NE(m.find(dir + "/vocab.json: field 'b': expected a token id"), std::string::npos) << m;
}

TEST(BpeTokenizer, IdsFarBeyondTheVocabularyAreRefusedNamingTheToken) {
  // Tables (and the embedding of a model trained with the tokenizer) are sized by the largest id: an id
  // far past the number of tokens the file defines is an error, before anything is allocated for it.
  const std::string dir = test::scratch_dir("data/bpe-ids");
  const std::string good = tiny_tokenizer_json({{"a", "b"}}, kByteLevel);  // 257 tokens + <|endoftext|> at 300
  auto err = [&](const std::string& json) {
    const std::string p = write_json(dir, "t.json", json);
    return error_of([&] { BpeTokenizer::from_tokenizer_json(p); });
  };
  auto replace = [](std::string s, const std::string& a, const std::string& b) { return s.replace(s.find(a), a.size(), b); };
  EXPECT_EQ(err(good), "");  // a gap before the added tokens is fine
  std::string m = err(replace(good, R"("ab":256)", R"("ab":100000)"));
  EXPECT_NE(m.find(dir + "/t.json: field 'model.vocab.ab': id 100000 is out of range: the file defines 258 tokens"),
            std::string::npos) << m;
  m = err(replace(good, R"("id": 300)", R"("id": 2147483647)"));
  EXPECT_NE(m.find("field 'added_tokens[0].id': id 2147483647 of token '<|endoftext|>' is out of range"),
            std::string::npos) << m;
  datatest::write_bytes(dir + "/vocab.json", R"({"a": 0, "b": 1, "ab": 99999})");
  datatest::write_bytes(dir + "/merges.txt", "a b\n");
  m = error_of([&] { BpeTokenizer::from_vocab_merges(dir + "/vocab.json", dir + "/merges.txt"); });
  EXPECT_NE(m.find(dir + "/vocab.json: field 'ab': id 99999 is out of range"), std::string::npos) << m;
}

TEST(BpeTokenizer, SplitPatternThatRescansTheLineIsAnErrorNotAHang) {
  // Each match of this pattern rescans the rest of the line in its lookahead: cheap per match for PCRE2's
  // own limits, quadratic per text (80 kB would take about 5 s of CPU time, 200 kB half a minute). The budget per text ends it.
  const std::string dir = test::scratch_dir("data/bpe-slow-regex");
  const std::string split = R"({"type": "Split", "pattern": {"Regex": "\\p{L}(?=\\p{L}*\\d)|\\p{L}"}, "behavior": "Isolated"})";
  const std::string pre = R"({"type": "Sequence", "pretokenizers": [)" + split +
                          R"(, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})";
  auto tok = BpeTokenizer::from_tokenizer_json(write_json(dir, "t.json", tiny_tokenizer_json({}, pre)));
  EXPECT_EQ(tok->encode("ab1"), (std::vector<int64_t>{'a', 'b', '1'}));  // short texts are fine
  const auto t0 = std::chrono::steady_clock::now();
  const std::string m = error_of([&] { tok->encode(std::string(80000, 'a')); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(m.find(dir + "/t.json: field 'pre_tokenizer.pretokenizers[0].pattern': regex needs too much work"),
            std::string::npos) << m;
  EXPECT_NE(m.find("on a text of 80000 bytes"), std::string::npos) << m;
  EXPECT_LT(s, 30.0);  // the budget is 0.9 s of CPU time; wall time on a busy machine is more
  // The same tokenizer still works afterwards (the budget belongs to one text).
  EXPECT_EQ(tok->encode("ba"), (std::vector<int64_t>{'b', 'a'}));
  // PCRE2's start-of-pattern verbs would come before the budget's callout: refused.
  const std::string verb = R"({"type": "Split", "pattern": {"Regex": "(*NO_JIT)a"}, "behavior": "Isolated"})";
  const std::string msg = error_of([&] {
    BpeTokenizer::from_tokenizer_json(write_json(
        dir, "v.json",
        tiny_tokenizer_json({}, R"({"type": "Sequence", "pretokenizers": [)" + verb + ", " + kByteLevel + "]}")));
  });
  EXPECT_NE(msg.find("regex starts with a PCRE2 verb"), std::string::npos) << msg;
}

TEST(BpeTokenizer, LongAddedTokensThatStartAlikeAreAnErrorNotAHang) {
  // 64 added tokens of 64 KiB that differ only at their end: at each position of a text of that
  // letter each is compared almost to its end, 4 MB of comparisons per byte of text (100 kB took about
  // 7 s; larger files and texts, hours). The text's budget (1 s of CPU time here) ends it.
  const std::string dir = test::scratch_dir("data/bpe-long-added");
  std::string added = "[";
  for (int i = 0; i < 64; ++i)
    added += std::string(i ? ", " : "") + R"({"id": )" + std::to_string(256 + i) + R"(, "content": ")" +
             std::string(65536, 'a') + "-" + std::to_string(i) + R"(", "special": true})";
  added += "]";
  auto tok = BpeTokenizer::from_tokenizer_json(write_json(dir, "t.json", tiny_tokenizer_json({}, kByteLevel, true, added)));
  EXPECT_EQ(tok->encode(std::string(65536, 'a') + "-1"), (std::vector<int64_t>{257}));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string m = error_of([&] { tok->encode(std::string(100000, 'a')); });
  EXPECT_NE(m.find(dir + "/t.json: added tokens need too much work to find: more than 1.0 s of CPU time on a text "
                         "of 100000 bytes"),
            std::string::npos) << m;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
}

TEST(StreamDecoder, ReleasesWholeCharactersOnly) {
  const std::string dir = test::scratch_dir("data/bpe-stream");
  auto tok = BpeTokenizer::from_tokenizer_json(write_json(dir, "t.json", tiny_tokenizer_json({}, kByteLevel)));
  StreamDecoder d(*tok);
  const std::string euro = "\xE2\x82\xAC";  // three byte tokens
  EXPECT_EQ(d.push('a'), "a");
  EXPECT_EQ(d.push(0xE2), "");
  EXPECT_EQ(d.push(0x82), "");
  EXPECT_EQ(d.push(0xAC), euro);
  EXPECT_EQ(d.push(0xF0), "");
  EXPECT_EQ(d.finish(), "\xF0");
  EXPECT_TRUE(ends_in_partial_utf8("x\xE2\x82"));
  EXPECT_FALSE(ends_in_partial_utf8("x" + euro));
  EXPECT_FALSE(ends_in_partial_utf8("x\x82"));  // a stray continuation byte waits for nothing
}

// ---- against Hugging Face `tokenizers` ----

// The varied tail appended to the corpus: contractions, numbers, whitespace runs, scripts, emoji, Unicode
// spaces, special tokens inside text, long runs.
std::string varied_text() {
  std::string t;
  t += "Don't stop! I'LL go; she'S here, we've been, they'd say, you're IT'S 'tis o'clock ''quoted''\n";
  t += "Numbers: 1 12 123 1234 12345 3.14159 1,000,000 2024-05-20 0x1F \xD9\xA3\xD9\xA4 \xC2\xBC \xE2\x85\xAB 10th\n";
  t += "   spaces\t\ttabs\n\n\nnewlines\r\nwindows\r\n\r\n  \n \n\t\n x  y   z    \n";
  t += "Emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D"
       "\xF0\x9F\x91\xA7 \xF0\x9F\x87\xA9\xF0\x9F\x87\xAA \xE2\x9D\xA4\xEF\xB8\x8F and CJK \xE4\xB8\xAD\xE6\x96\x87"
       "\xE5\xAD\x97\xE7\xAC\xA6 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4\n";
  t += "Accents: caf\xC3\xA9 na\xC3\xAFve \xC3\x9C" "ber e\xCC\x81 \xC3\x85ngstr\xC3\xB6m \xEF\xAC\x81 \xC5\xBF 'Ss 'S '\xC5\xBF\n";
  t += "Cyrillic: \xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80 Greek: \xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7"
       " Arabic: \xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 Hindi: \xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87\n";
  t += "Odd spaces:\xC2\xA0nbsp\xE2\x80\xA8line\xE2\x80\xA9para\xC2\x85nel\xE3\x80\x80ideo\xE2\x80\x8Bzw\xE2\x80\x83"
       "em\xE1\xA0\x8Emongol\xEF\xBB\xBF" "bom\n";
  t += "Special: <|endoftext|> mid<|endoftext|>word <|end_of_text|><|begin_of_text|> <|endof partial "
       "<|reserved_special_token_2|>x\n";
  t += "Punct!!! ??? ... --- (parens) [b] {c} @user #tag $100 %50 ^c &amp *s* ~t~ `code` \\back/slash http://x.io/a?b=c\n";
  t += "Long: " + std::string(300, 'a') + " digits " + std::string(100, '9') + " space" + std::string(200, ' ') + "end\n";
  t += "Combining: a\xCC\x80\xCC\x81\xCC\x82 Z\xCD\x91\xCD\x92" "a\xCD\x93\n";
  return t + t;
}

// The corpus the tests use: the King James Bible from Debian's bible-kjv (as scripts/prepare-corpus.sh
// makes it), or, without it, a generated English-like text.
std::string kjv_or_generated() {
  if (test::have_program("bible")) {
    const test::CommandRun kjv = test::run({"bible", "Genesis1:1-Revelation22:21"});
    std::string text;  // each line without the verse number that starts it (sed -E 's/^ +[0-9]+ //')
    for (size_t at = 0; at < kjv.out.size();) {
      const size_t end = std::min(kjv.out.find('\n', at), kjv.out.size() - 1) + 1;
      size_t digits = kjv.out.find_first_not_of(' ', at), after = digits;
      while (after < end && std::isdigit(static_cast<unsigned char>(kjv.out[after]))) ++after;
      const bool numbered = digits > at && after > digits && after < end && kjv.out[after] == ' ';
      text.append(kjv.out, numbered ? after + 1 : at, end - (numbered ? after + 1 : at));
      at = end;
    }
    if (kjv.rc == 0 && text.size() > 1000000) return text;
  }
  std::string text;
  const char* words[] = {"the", "king", "said", "unto", "them", "and", "light", "was", "good", "earth", "I'll", "we've"};
  uint64_t x = 7;
  for (int line = 0; line < 20000; ++line) {
    for (int w = 0; w < 10; ++w) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      text += std::string(words[(x >> 33) % 12]) + (w < 9 ? " " : ", " + std::to_string(line) + ".\n");
    }
  }
  return text;
}

class BpeVsHuggingFace : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::python().empty()) return;
    dir_ = new std::string(test::scratch_dir("data/bpe-hf"));
    text_ = new std::string(kjv_or_generated() + varied_text());
    datatest::write_bytes(*dir_ + "/text.txt", *text_);
    for (const char* style : {"gpt2", "llama3"})
      python({"train", style, *dir_ + "/text.txt", "2000", *dir_ + "/" + style});
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete text_;
  }
  void SetUp() override { GQE_SKIP_WITHOUT_PYTHON(); }
  // tests/tokenizers/bpe_reference.py ARGS.
  static void python(const test::Args& args) {
    ASSERT_TRUE(test::exited(
        test::run(test::concat({test::python(), test::source_dir() + "/tests/tokenizers/bpe_reference.py"}, args)), 0));
  }
  // Hugging Face's ids for the test text.
  static std::vector<int64_t> hf_ids(const std::string& tokenizer_json) {
    const std::string out = tokenizer_json + ".ids";
    python({"encode", tokenizer_json, *dir_ + "/text.txt", out});
    const std::string raw = fs::read_file(out);
    std::vector<int64_t> ids(raw.size() / 4);
    for (size_t i = 0; i < ids.size(); ++i) {
      uint32_t v = 0;
      std::memcpy(&v, raw.data() + 4 * i, 4);
      ids[i] = v;
    }
    return ids;
  }
  static void expect_same(const BpeTokenizer& tok, const std::vector<int64_t>& want) {
    const std::vector<int64_t> got = tok.encode(*text_);
    ASSERT_GT(want.size(), 1000u);
    size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
    if (i < got.size() || i < want.size()) {
      const size_t from = i > 8 ? i - 8 : 0;
      std::vector<int64_t> g(got.begin() + from, got.begin() + std::min(got.size(), i + 8));
      std::vector<int64_t> w(want.begin() + from, want.begin() + std::min(want.size(), i + 8));
      ADD_FAILURE() << tok.name() << ": first difference at token " << i << " of " << want.size() << " near text '"
                    << tok.decode(g) << "' (ours) vs '" << tok.decode(w) << "' (tokenizers)";
    }
    EXPECT_EQ(tok.decode(got), *text_);
  }
  static std::string *dir_, *text_;
};
std::string *BpeVsHuggingFace::dir_ = nullptr, *BpeVsHuggingFace::text_ = nullptr;

TEST_F(BpeVsHuggingFace, Gpt2StyleTokenForToken) {
  const std::string d = *dir_ + "/gpt2";
  const auto want = hf_ids(d + "/tokenizer.json");
  auto tok = BpeTokenizer::from_tokenizer_json(d + "/tokenizer.json");
  EXPECT_EQ(tok->vocab_size(), 2000);
  EXPECT_EQ(tok->eos_id(), tok->token_id("<|endoftext|>"));
  expect_same(*tok, want);
  expect_same(*BpeTokenizer::from_tokenizer_json(d + "/tokenizer-string-merges.json"), want);
  // GPT-2's file pair written from the same model.
  expect_same(*BpeTokenizer::from_vocab_merges(d + "/vocab.json", d + "/merges.txt"), want);
  // Two threads at once (each with its own cache) give the same ids.
  std::vector<int64_t> a, b;
  std::thread t1([&] { a = tok->encode(*text_); }), t2([&] { b = tok->encode(*text_); });
  t1.join();
  t2.join();
  EXPECT_EQ(a, want);
  EXPECT_EQ(b, want);
}

TEST_F(BpeVsHuggingFace, Llama3StyleTokenForToken) {
  const std::string d = *dir_ + "/llama3";
  const auto want = hf_ids(d + "/tokenizer.json");
  auto tok = BpeTokenizer::from_tokenizer_json(d + "/tokenizer.json");
  EXPECT_EQ(tok->eos_id(), tok->token_id("<|end_of_text|>"));
  expect_same(*tok, want);
  expect_same(*BpeTokenizer::from_tokenizer_json(d + "/tokenizer-string-merges.json"), want);
}

}  // namespace
}  // namespace gqe
