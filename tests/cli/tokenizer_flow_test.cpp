// Every command uses the run's tokenizer (tokenizers/run_tokenizer.h), end to end through the executable:
// a SentencePiece run generates real pieces; GPT-2-style byte-level BPE with llm.c shards goes
// train -> eval -> generate; `gqe data prepare --tokenizer tokenizer.json` equals encoding the whole text.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/data_test_util.h"
#include "process_util.h"
#include "gqe/core/fs.h"
#include "gqe/core/sha256.h"
#include "gqe/tokenizers/bpe_tokenizer.h"
#include "gqe/tokenizers/sentencepiece.h"
#include "gqe/data/shard.h"
#include "gqe/tokenizers/stream_decoder.h"

namespace gqe {
namespace {

// gqe ARGS with stdout and stderr kept apart.
test::CommandRun gqe(const test::Args& args) { return test::run_gqe(args, test::RunOptions().keep_stderr_apart()); }

// The ids after "WHAT:" on a line of `text` (gqe generate --print-tokens).
std::vector<int64_t> ids_after(const std::string& text, const std::string& what) {
  std::vector<int64_t> ids;
  const size_t at = text.find(what + ":");
  if (at == std::string::npos) return ids;
  std::istringstream line(text.substr(at + what.size() + 1, text.find('\n', at) - at - what.size() - 1));
  for (int64_t t; line >> t;) ids.push_back(t);
  return ids;
}

std::string corpus() {
  const char* words[] = {"the", "king", "said", "unto", "them", "and", "light", "was", "good", "earth",
                         "heaven", "waters", "day", "night", "people", "land", "God", "created", "every", "thing"};
  std::string text;
  uint64_t x = 3;
  for (int line = 0; line < 1200; ++line) {
    if (line % 40 == 0) text += "\n    Chapter " + std::to_string(line / 40) + "\n\n";
    const int n = 4 + line % 7;
    for (int w = 0; w < n; ++w) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      text += words[(x >> 33) % 20];
      text += w + 1 < n ? " " : ".\n";
    }
  }
  return text;
}

std::string tiny_config(int64_t vocab) {
  return R"({"vocab_size": )" + std::to_string(vocab) + R"(, "hidden_size": 32, "num_hidden_layers": 1,
    "intermediate_size": 64, "max_position_embeddings": 128, "attention": {"kind": "gqe",
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "top_k": 1, "variant": "gqe"}})";
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += len;
  }
  return true;
}

class TokenizerFlow : public ::testing::Test {
 protected:
  void SetUp() override { GQE_SKIP_WITHOUT_BIN(); }
};

TEST_F(TokenizerFlow, SentencePieceRunGeneratesRealPieces) {
  const std::string dir = test::scratch_dir("data/flow-spm");
  datatest::write_bytes(dir + "/c.txt", corpus());
  datatest::write_bytes(dir + "/model.json", tiny_config(128));
  // No byte fallback: every piece is text, so any U+FFFD or invalid UTF-8 in the output means the ids were
  // decoded with the wrong tokenizer (bytes, as `gqe generate` once did: '?' and broken characters).
  test::CommandRun t = gqe({"tokenizer", "train", "--input", dir + "/c.txt", "--out", dir + "/spm", "--vocab-size",
                            "120", "--threads", "1", "--spm-option", "byte_fallback=false"});
  ASSERT_EQ(t.rc, 0) << t.out << t.err;
  test::CommandRun tr = gqe({"train", "--config", dir + "/model.json", "--data", dir + "/c.txt", "--tokenizer",
                             dir + "/spm.model", "--out", dir + "/run", "--steps", "3", "--batch", "2", "--seq", "32",
                             "--threads", "1", "--sample-tokens", "0"});
  ASSERT_EQ(tr.rc, 0) << tr.out << tr.err;
  EXPECT_TRUE(fs::is_file(dir + "/run/tokenizer.model"));
  const auto rec = nlohmann::json::parse(fs::read_file(dir + "/run/tokenizer_info.json"));
  EXPECT_EQ(rec["kind"], "sentencepiece");
  EXPECT_EQ(rec["vocab_size"], 120);

  const std::string prompt = "the king said unto them";
  test::CommandRun g = gqe({"generate", "--checkpoint", dir + "/run", "--prompt", prompt, "--max-new-tokens", "40",
                            "--seed", "3", "--threads", "1", "--print-tokens"});
  ASSERT_EQ(g.rc, 0) << g.out << g.err;
  SentencePieceTokenizer spm(dir + "/spm.model");
  EXPECT_EQ(ids_after(g.err, "prompt tokens"), spm.encode(prompt)) << g.err;
  const std::vector<int64_t> gen = ids_after(g.err, "generated tokens");
  ASSERT_EQ(gen.size(), 40u) << g.err;
  for (int64_t id : gen) EXPECT_LT(id, 120) << "the model's vocab_size 128 is padded past the tokenizer";
  EXPECT_EQ(g.out, prompt + spm.decode(gen) + "\n");
  EXPECT_EQ(g.out.find("\xEF\xBF\xBD"), std::string::npos) << g.out;
  EXPECT_TRUE(valid_utf8(g.out)) << g.out;
  // The checkpoint inside the run finds the run's tokenizer too.
  test::CommandRun g2 = gqe({"generate", "--checkpoint", dir + "/run/checkpoints/step-00000003", "--prompt", prompt,
                             "--max-new-tokens", "5", "--threads", "1", "--print-tokens"});
  ASSERT_EQ(g2.rc, 0) << g2.out << g2.err;
  EXPECT_EQ(ids_after(g2.err, "prompt tokens"), spm.encode(prompt));
}

// A GPT-2-style tokenizer.json: the 256 bytes, merges for the corpus' words, <|endoftext|>.
std::string write_bpe_tokenizer(const std::string& path, int64_t eot_id) {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, char(b)))] = b;
  nlohmann::json merges = nlohmann::json::array();
  auto add = [&](const std::string& a, const std::string& b) {
    const std::string A = bytes_to_byte_level(a), B = bytes_to_byte_level(b);
    if (!vocab.contains(A + B)) vocab[A + B] = int64_t(vocab.size());
    merges.push_back({A, B});
  };
  add("\n", "\n");  // whitespace merges: a chunk cut inside a whitespace run would change the ids
  add(" ", " ");
  for (const std::string w : {"the", "king", "said", "unto", "them", "and", "light"}) {
    std::string cur = " ";
    for (char c : w) {
      add(cur, std::string(1, c));
      cur += c;
    }
  }
  const std::string j = R"({"added_tokens": [{"id": )" + std::to_string(eot_id) +
                        R"(, "content": "<|endoftext|>", "special": true}], "normalizer": null,
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
      "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": )" + vocab.dump() +
                        R"(, "merges": )" + merges.dump() + "}}";
  datatest::write_bytes(path, j);
  return path;
}

TEST_F(TokenizerFlow, Gpt2BpeWithLlmcShardsTrainEvalGenerate) {
  const std::string dir = test::scratch_dir("data/flow-bpe");
  const std::string text = corpus();
  datatest::write_bytes(dir + "/c.txt", text);
  const std::string tj = write_bpe_tokenizer(dir + "/tokenizer.json", 300);
  auto tok = BpeTokenizer::from_tokenizer_json(tj);
  ASSERT_EQ(tok->vocab_size(), 301);

  // gqe data prepare with the BPE: line-aligned chunks, yet the same ids as encoding the whole file (the
  // corpus has blank lines and indented lines, where a cut would split a whitespace run).
  test::CommandRun p = gqe({"data", "prepare", "--input", dir + "/c.txt", "--out", dir + "/sh", "--tokenizer", tj,
                            "--val-fraction", "0", "--chunk-bytes", "200", "--threads", "2", "--quiet"});
  ASSERT_EQ(p.rc, 0) << p.out << p.err;
  TokenShard shard(dir + "/sh/train_000000.tok");
  EXPECT_EQ(shard.vocab_size(), 301u);
  std::vector<int64_t> got(shard.num_tokens());
  shard.read(0, got.size(), got.data());
  std::vector<int64_t> want = tok->encode(text);
  want.push_back(300);  // EOS after the document
  EXPECT_EQ(got, want);

  // llm.c shards (GPT-2 layout: uint16) of the same text, as llm.c's fineweb.py writes them.
  const size_t cut = want.size() * 9 / 10;
  write_llmc_shard(dir + "/train.bin", std::vector<int64_t>(want.begin(), want.begin() + int64_t(cut)));
  write_llmc_shard(dir + "/val.bin", std::vector<int64_t>(want.begin() + int64_t(cut), want.end()));
  datatest::write_bytes(dir + "/model.json", tiny_config(320));
  test::CommandRun tr = gqe({"train", "--config", dir + "/model.json", "--train-shards", dir + "/train.bin",
                             "--val-shards", dir + "/val.bin", "--tokenizer", tj, "--out", dir + "/run", "--steps",
                             "3", "--batch", "2", "--seq", "32", "--threads", "1", "--sample-tokens", "8"});
  ASSERT_EQ(tr.rc, 0) << tr.out << tr.err;
  EXPECT_TRUE(fs::is_file(dir + "/run/tokenizer.json"));
  test::CommandRun ev = gqe({"eval", "--val-loss", "--checkpoint", dir + "/run", "--data", dir + "/val.bin", "--seq",
                             "32", "--out", dir + "/vl.json"});
  ASSERT_EQ(ev.rc, 0) << ev.out << ev.err;
  // Text data for eval goes through the run's BPE too.
  test::CommandRun evt = gqe({"eval", "--val-loss", "--checkpoint", dir + "/run", "--data", dir + "/c.txt", "--seq",
                              "32", "--max-tokens", "2000", "--out", dir + "/vlt.json"});
  ASSERT_EQ(evt.rc, 0) << evt.out << evt.err;
  const std::string prompt = "And the king said";
  test::CommandRun g = gqe({"generate", "--checkpoint", dir + "/run", "--prompt", prompt, "--max-new-tokens", "20",
                            "--threads", "1", "--print-tokens"});
  ASSERT_EQ(g.rc, 0) << g.out << g.err;
  EXPECT_EQ(ids_after(g.err, "prompt tokens"), tok->encode(prompt));
  const auto gen = ids_after(g.err, "generated tokens");
  EXPECT_EQ(g.out, prompt + tok->decode(gen) + "\n");

  // A tokenizer with more ids than the model: a clear error, for every command.
  const std::string big = write_bpe_tokenizer(dir + "/big.json", 400);
  test::CommandRun bad = gqe({"generate", "--checkpoint", dir + "/run", "--prompt", "x", "--tokenizer", big});
  EXPECT_EQ(bad.rc, 1) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("has 401 ids but the checkpoint's vocab_size is 320"), std::string::npos) << bad.err;
  test::CommandRun badtrain = gqe({"train", "--config", dir + "/model.json", "--data", dir + "/c.txt", "--tokenizer",
                                   big, "--out", dir + "/run2", "--steps", "1"});
  EXPECT_NE(badtrain.rc, 0);
  EXPECT_NE(badtrain.err.find("is smaller than the tokenizer's 401"), std::string::npos) << badtrain.err;
  // gqe shards record their tokenizer (meta.json's hash, the shards' vocabulary): another one is refused.
  datatest::write_bytes(dir + "/model512.json", tiny_config(512));
  test::CommandRun mixed =
      gqe({"train", "--config", dir + "/model512.json", "--train-shards", dir + "/sh/train_000000.tok", "--tokenizer",
           big, "--out", dir + "/run3", "--steps", "1"});
  EXPECT_NE(mixed.rc, 0);
  EXPECT_NE(mixed.err.find(dir + "/sh/meta.json: field 'tokenizer_sha256'"), std::string::npos) << mixed.err;
  // Without meta.json, the vocabulary in the shards' headers still tells them apart.
  std::filesystem::rename(dir + "/sh/meta.json", dir + "/sh/meta.json.off");
  mixed = gqe({"train", "--config", dir + "/model512.json", "--train-shards", dir + "/sh/train_000000.tok",
               "--tokenizer", big, "--out", dir + "/run3", "--steps", "1"});
  EXPECT_NE(mixed.rc, 0);
  EXPECT_NE(mixed.err.find("written by a tokenizer of 301 ids"), std::string::npos) << mixed.err;
  std::filesystem::rename(dir + "/sh/meta.json.off", dir + "/sh/meta.json");
  // Without --tokenizer, gqe shards bring the one their meta.json names.
  test::CommandRun own =
      gqe({"train", "--config", dir + "/model512.json", "--train-shards", dir + "/sh/train_000000.tok", "--out",
           dir + "/run4", "--steps", "1", "--batch", "2", "--seq", "32", "--threads", "1", "--sample-tokens", "0"});
  ASSERT_EQ(own.rc, 0) << own.out << own.err;
  EXPECT_EQ(fs::read_file(dir + "/run4/tokenizer.json"), fs::read_file(tj));
}

// A tokenizer retrained in place keeps its path and here its vocabulary size: the shards made with the old
// one are refused by their content hash (meta.json's tokenizer_sha256) by every reader, naming both files.
TEST_F(TokenizerFlow, ShardsOfATokenizerRetrainedInPlaceAreRefused) {
  const std::string dir = test::scratch_dir("data/flow-retrained");
  datatest::write_bytes(dir + "/c.txt", corpus());
  datatest::write_bytes(dir + "/model.json", tiny_config(320));
  const std::string tj = write_bpe_tokenizer(dir + "/tokenizer.json", 300);
  test::CommandRun p = gqe({"data", "prepare", "--input", dir + "/c.txt", "--out", dir + "/sh", "--tokenizer", tj,
                            "--val-fraction", "0.1", "--chunk-bytes", "2000", "--threads", "1", "--quiet"});
  ASSERT_EQ(p.rc, 0) << p.out << p.err;
  const auto meta = nlohmann::json::parse(fs::read_file(dir + "/sh/meta.json"));
  EXPECT_EQ(meta["tokenizer_sha256"], sha256_file(tj));

  // "Retrained": two merges swap ranks; the same 301 ids.
  auto j = nlohmann::json::parse(fs::read_file(tj));
  std::swap(j["model"]["merges"][3], j["model"]["merges"][4]);
  datatest::write_bytes(tj, j.dump());
  ASSERT_EQ(BpeTokenizer::from_tokenizer_json(tj)->vocab_size(), 301);
  const auto train = [&](const test::Args& more) {
    return test::concat({"train", "--config", dir + "/model.json", "--steps", "1", "--batch", "2", "--seq", "32",
                         "--threads", "1", "--sample-tokens", "0", "--eval-every", "0"},
                        more);
  };
  auto expect_refused = [&](const test::CommandRun& r, const std::string& what) {
    EXPECT_EQ(r.rc, 1) << what << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find(dir + "/sh/meta.json: field 'tokenizer_sha256': the shards there"), std::string::npos)
        << what << "\n" << r.err;
    EXPECT_NE(r.err.find("this run's tokenizer is "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("tokenizer.json (SHA-256 " + sha256_file(tj) + ")"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("gqe data prepare"), std::string::npos) << r.err;
  };
  // The tokenizer meta.json names, and the same file given as --tokenizer; training shards and validation shards.
  expect_refused(gqe(train({"--train-shards", dir + "/sh/train_000000.tok", "--out", dir + "/r1"})), "meta.json's");
  expect_refused(gqe(train({"--train-shards", dir + "/sh/train_000000.tok", "--tokenizer", tj, "--out", dir + "/r2"})),
                 "--tokenizer");
  expect_refused(gqe(train({"--data", dir + "/c.txt", "--val-shards", dir + "/sh/val_000000.tok", "--tokenizer", tj,
                            "--out", dir + "/r3"})),
                 "--val-shards");
  EXPECT_FALSE(fs::exists(dir + "/r1/metrics.jsonl"));

  // A run of the new tokenizer evaluates the old shards: refused too (its recorded copy has the new hash).
  test::CommandRun tr = gqe(train({"--data", dir + "/c.txt", "--tokenizer", tj, "--out", dir + "/run"}));
  ASSERT_EQ(tr.rc, 0) << tr.out << tr.err;
  const test::Args val_loss = {"eval", "--val-loss", "--checkpoint", dir + "/run", "--seq", "32", "--data",
                               dir + "/sh/val_000000.tok"};
  test::CommandRun ev = gqe(val_loss);
  EXPECT_EQ(ev.rc, 1) << ev.out << ev.err;
  EXPECT_NE(ev.err.find(dir + "/sh/meta.json: field 'tokenizer_sha256'"), std::string::npos) << ev.err;
  EXPECT_NE(ev.err.find(dir + "/run/tokenizer.json"), std::string::npos) << ev.err;

  // Shards from before the hash was recorded: accepted with a one-line warning.
  auto old = meta;
  old.erase("tokenizer_sha256");
  datatest::write_bytes(dir + "/sh/meta.json", old.dump(2));
  ev = gqe(val_loss);
  EXPECT_EQ(ev.rc, 0) << ev.out << ev.err;
  const size_t w = ev.err.find("warning: " + dir + "/sh/meta.json records no tokenizer_sha256");
  ASSERT_NE(w, std::string::npos) << ev.err;
  EXPECT_NE(ev.err.find("prepare them again", w), std::string::npos) << ev.err;
  // A damaged meta.json is an error naming it, not a silent skip of the check.
  datatest::write_bytes(dir + "/sh/meta.json", "{\"train\": ");
  ev = gqe(val_loss);
  EXPECT_EQ(ev.rc, 1) << ev.out << ev.err;
  EXPECT_NE(ev.err.find(dir + "/sh/meta.json: not valid JSON"), std::string::npos) << ev.err;
}

}  // namespace
}  // namespace gqe
