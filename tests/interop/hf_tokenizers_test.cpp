// The tokenizer side of `gqe export --format hf`: every export (byte tokenizer, SentencePiece, a byte-level
// BPE tokenizer.json) names an eos and pad token that is a row of the model's embedding, so that
// lm-evaluation-harness's HFLM runs every request type on the folder's path alone, and transformers pads
// batches with it. The Python half is tests/interop/hf_check.py ($GQE_PYTHON; without it those tests skip).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "gqe/core/fs.h"
#include "gqe/tokenizers/run_tokenizer.h"
#include "gqe/interop/hf_export.h"
#include "interop/interop_test_util.h"
#include "interop/interop_tokenizers.h"
#include "spm_crafted.h"
#include "test_util.h"

using namespace gqe;
using namespace gqe::interop;

namespace {

// A small GQE model over `vocab` ids; a short context, so that rolling log-likelihoods take several windows.
ModelConfig model_config(int64_t vocab) {
  ModelConfig c = test::small_config("gqe", 8, 4, 1, "gqe");
  c.vocab_size = vocab;
  c.intermediate_size = 48;
  c.max_position_embeddings = 64;
  return c;
}

// A checkpoint with its tokenizer recorded as `gqe train --tokenizer SPEC` records it.
std::string run_with_tokenizer(const std::string& dir, int64_t vocab, const std::string& spec, uint64_t seed) {
  make_checkpoint(dir, model_config(vocab), seed, 0.3);
  record_run_tokenizer(dir, spec);
  return dir;
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(fs::read_file(path)); }

}  // namespace

TEST(HfTokenizers, ByteLevelExportNamesOnlyIdsInsideTheEmbedding) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("interop_tok_bytes");
  const std::string ckpt = make_checkpoint(dir + "/ckpt", model_config(256), 3), hf = dir + "/hf";
  const test::CommandRun r = test::run_gqe({"export", "--format", "hf", ckpt, hf});
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto tj = read_json(hf + "/tokenizer.json");
  EXPECT_TRUE(tj["added_tokens"].empty()) << tj["added_tokens"].dump();
  ASSERT_EQ(tj["model"]["vocab"].size(), 256u);
  for (const auto& [text, id] : tj["model"]["vocab"].items()) EXPECT_LT(id.get<int64_t>(), 256) << text;
  // eos and pad: byte 0 under its byte-level character U+0100 (id 0 in the vocabulary).
  const auto tc = read_json(hf + "/tokenizer_config.json");
  EXPECT_EQ(tc["eos_token"], "\xC4\x80");
  EXPECT_EQ(tc["pad_token"], "\xC4\x80");
  EXPECT_EQ(tj["model"]["vocab"]["\xC4\x80"], 0);
  EXPECT_EQ(tc["split_special_tokens"], true);
  EXPECT_TRUE(is_byte_level_tokenizer_json(fs::read_file(hf + "/tokenizer.json")));
}

TEST(HfTokenizers, BpeExportNamesItsEndOfTextToken) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("interop_tok_bpe");
  // The tokenizer's <|endoftext|>, as gqe finds it, is eos and pad.
  const std::string ckpt = run_with_tokenizer(dir + "/ckpt", 320, write_bpe_tokenizer(dir + "/tokenizer.json", true), 4);
  test::CommandRun r = test::run_gqe({"export", "--format", "hf", ckpt, dir + "/hf"});
  ASSERT_EQ(r.rc, 0) << r.out;
  auto tc = read_json(dir + "/hf/tokenizer_config.json");
  EXPECT_EQ(tc["eos_token"], "<|endoftext|>");
  EXPECT_EQ(tc["pad_token"], "<|endoftext|>");
  EXPECT_FALSE(tc.contains("split_special_tokens"));  // <|endoftext|> in text is the token, as gqe encodes it
  EXPECT_EQ(fs::read_file(dir + "/hf/tokenizer.json"), fs::read_file(ckpt + "/tokenizer.json"));

  // No end-of-text token: id 0 stands in, kept an ordinary token in text, and the export says so.
  fs::mkdirs(dir + "/noeot");
  const std::string noeot = run_with_tokenizer(dir + "/noeot/ckpt", 300, write_bpe_tokenizer(dir + "/noeot/t.json", false), 4);
  r = test::run_gqe({"export", "--format", "hf", noeot, dir + "/hf_noeot"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("has no end-of-text token"), std::string::npos) << r.out;
  tc = read_json(dir + "/hf_noeot/tokenizer_config.json");
  EXPECT_EQ(tc["eos_token"], "\xC4\x80");  // id 0: byte 0 in this vocabulary, U+0100 in the byte-level alphabet
  EXPECT_EQ(tc["pad_token"], "\xC4\x80");
  EXPECT_EQ(tc["split_special_tokens"], true);

  // An end-of-text id past the model's embedding: refused, naming the file, and nothing is written.
  const std::string small = make_checkpoint(dir + "/small", model_config(260), 4);
  r = test::run_gqe({"export", "--format", "hf", small, dir + "/x", "--tokenizer", ckpt + "/tokenizer.json"});
  EXPECT_TRUE(test::fails_with(r, "tokenizer.json: its eos token '<|endoftext|>' has id " +
                                      std::to_string(kBpeEndOfText) + ", outside the model's vocab_size 260"));
  EXPECT_FALSE(fs::exists(dir + "/x"));
}

// A SentencePiece model without an eos piece (trainer_spec.eos_id = -1): piece 0 stands in as eos and pad,
// and the export says so.
TEST(HfTokenizers, SentencePieceWithoutEosNamesPieceZero) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("interop_tok_spm_noeos");
  // A second trainer_spec merges into the first, as protobuf does: eos_id = -1 (int32, sign-extended).
  fs::write_file_atomic(dir + "/noeos.model", test::crafted_spm_model("") + test::proto_bytes(2, test::proto_uint(42, ~0ull)));
  const std::string ckpt = make_checkpoint(dir + "/ckpt", model_config(256), 5);
  const test::CommandRun r =
      test::run_gqe({"export", "--format", "hf", ckpt, dir + "/hf", "--tokenizer", dir + "/noeos.model"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("noeos.model has no eos piece"), std::string::npos) << r.out;
  const auto tc = read_json(dir + "/hf/tokenizer_config.json");
  EXPECT_EQ(tc["eos_token"], "<unk>");
  EXPECT_EQ(tc["pad_token"], "<unk>");
  EXPECT_EQ(tc["bos_token"], "<s>");
}

// Each kind of export in lm-evaluation-harness's HFLM with nothing but its path (and trust_remote_code):
// log-likelihoods with an empty context, rolling log-likelihoods over several windows, generate_until in
// batches of prompts of different lengths; and transformers' generate() on a left-padded batch gives each
// row what it gives alone.
TEST(HfTokenizers, EveryExportServesEveryHarnessRequestType) {
  GQE_SKIP_WITHOUT_BIN();
  GQE_SKIP_WITHOUT_PYTHON();
  const std::string dir = test::scratch_dir("interop_tok_requests");
  struct Case {
    std::string name, ckpt;
  };
  fs::mkdirs(dir + "/spm");
  const std::vector<Case> cases = {
      {"bytes", make_checkpoint(dir + "/bytes", model_config(256), 21, 0.3)},
      {"sentencepiece", run_with_tokenizer(dir + "/spm/ckpt", 320, train_small_sentencepiece(dir + "/spm", 320), 22)},
      {"bpe", run_with_tokenizer(dir + "/bpe", 320, write_bpe_tokenizer(dir + "/tokenizer.json", true), 23)}};
  nlohmann::json folders = nlohmann::json::object();
  for (const auto& c : cases) {
    const test::CommandRun r = test::run_gqe({"export", "--format", "hf", c.ckpt, dir + "/" + c.name + "_hf"});
    ASSERT_EQ(r.rc, 0) << c.name << ": " << r.out;
    folders[c.name] = dir + "/" + c.name + "_hf";
  }
  const std::string genesis =
      "In the beginning God created the heaven and the earth. And the earth was without form, and void; and "
      "darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters.";
  const nlohmann::json res = run_python(
      "requests", dir,
      {{"folders", folders},
       {"prompts", {"And God said", "Let there be light: and there was light. And God saw the light", "x"}},
       {"rolling_texts", {genesis, "short"}}});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto& r = res.at(c.name);
    ASSERT_FALSE(r.contains("error")) << r["error"].get<std::string>();
    const int64_t vocab = r["vocab_size"];
    for (const char* f : {"prefix_token_id", "eot_token_id", "pad_token_id"}) {
      ASSERT_TRUE(r[f].is_number_integer()) << f << ": " << r[f];
      EXPECT_GE(r[f].get<int64_t>(), 0) << f;
      EXPECT_LT(r[f].get<int64_t>(), vocab) << f;
    }
    // The ids gqe's tokenizer gives its end-of-text token.
    if (c.name == "bytes") EXPECT_EQ(r["prefix_token_id"], 0);
    if (c.name == "sentencepiece") EXPECT_EQ(r["eot_token_id"], 2);
    if (c.name == "bpe") EXPECT_EQ(r["prefix_token_id"], kBpeEndOfText);
    ASSERT_EQ(r["loglikelihood"].size(), 4u);
    for (const auto& ll : r["loglikelihood"]) EXPECT_TRUE(std::isfinite(ll.get<double>()) && ll.get<double>() < 0) << ll;
    ASSERT_EQ(r["loglikelihood_rolling"].size(), 2u);
    for (const auto& ll : r["loglikelihood_rolling"]) EXPECT_TRUE(std::isfinite(ll.get<double>()) && ll.get<double>() < 0) << ll;
    // The long text spans several windows: it costs more than the short one.
    EXPECT_LT(r["loglikelihood_rolling"][0].get<double>(), r["loglikelihood_rolling"][1].get<double>());
    EXPECT_EQ(r["generate_until"].size(), 3u);
    EXPECT_TRUE(r["padded"].get<bool>());
    EXPECT_EQ(r["batch_generate_matches_rows"], nlohmann::json({true, true, true}));
  }
}
