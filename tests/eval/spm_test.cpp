// Evaluation with a SentencePiece tokenizer (tokenizers/sentencepiece.h): --tokenizer PATH, the harness's joint
// encoding of context + continuation, and scoring with a model whose vocabulary covers the tokenizer's.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "eval/eval_test_util.h"
#include "test_util.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/tokenizers/run_tokenizer.h"
#include "gqe/tokenizers/sentencepiece.h"
#include "gqe/eval/requests.h"
#include "gqe/eval/scoring.h"

using namespace gqe;
using namespace gqe::eval;
using namespace gqe::eval::testing;
using gqe::test::scratch_dir;

TEST(EvalSentencePiece, JointEncodingAndScoring) {
  const std::string dir = scratch_dir("eval/spm");
  std::string text;
  const char* words[] = {"the", "king", "said", "unto", "them", "question", "answer", "light", "water", "land"};
  for (int line = 0; line < 400; ++line) {
    for (int w = 0; w < 9; ++w) text += std::string(words[(line * 7 + w * 3) % 10]) + (w < 8 ? " " : ".\n");
  }
  write(dir + "/corpus.txt", text);
  SpmTrainOptions o;
  o.inputs = {dir + "/corpus.txt"};
  o.model_prefix = dir + "/tok";
  o.vocab_size = 300;
  o.num_threads = 1;
  try {
    train_sentencepiece(o);
  } catch (const Error& e) {
    GTEST_SKIP() << "SentencePiece shim unavailable: " << e.what();
  }
  // A checkpoint directory with tokenizer.model is picked up without --tokenizer.
  write(dir + "/tokenizer.model", fs::read_file(dir + "/tok.model"));
  auto tok = load_run_tokenizer(dir, 512);
  EXPECT_EQ(tok->name(), dir + "/tokenizer.model");
  EXPECT_EQ(tok->vocab_size(), 300);
  EXPECT_EQ(load_run_tokenizer(dir, 512, "bytes")->name(), "bytes");
  const std::string msg = error_of([&] { load_run_tokenizer(dir, 256, dir + "/tok.model"); });
  EXPECT_NE(msg.find("has 300 ids but the checkpoint's vocab_size is 256"), std::string::npos) << msg;

  // The harness's rule: continuation tokens = encode(context + continuation)[len(encode(context)):].
  const std::string ctx = "Question: the king said\nAnswer:", cont = " unto them";
  const EncodedPair e = encode_pair(*tok, ctx, cont);
  const std::vector<int64_t> whole = tok->encode(ctx + cont), ctx_enc = tok->encode(ctx);
  EXPECT_EQ(e.context, ctx_enc);
  EXPECT_EQ(e.continuation, std::vector<int64_t>(whole.begin() + int64_t(ctx_enc.size()), whole.end()));
  EXPECT_FALSE(e.continuation.empty());
  EXPECT_EQ(tok->decode(e.context) + tok->decode(e.continuation), ctx + cont);

  ModelConfig c = test::small_config("gqe", 4, 2);
  c.vocab_size = 512;
  c.num_hidden_layers = 1;
  c.intermediate_size = 64;
  c.max_position_embeddings = 64;
  at::manual_seed(1);
  LanguageModel model(c);
  const Loglikelihood got = score_loglikelihoods(model, {e}, ScoreOptions{})[0];
  const Loglikelihood ref = score_one_reference(model, e, 0);
  EXPECT_NEAR(got.logprob, ref.logprob, 1e-4 * std::max(1.0, std::fabs(ref.logprob)));
  EXPECT_LT(got.logprob, 0.0);
}
