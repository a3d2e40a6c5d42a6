#include "gqe/generate/generate.h"

#include <gtest/gtest.h>

#include "gqe/core/error.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(Sampling, GreedyTopKAndTopP) {
  at::Tensor logits = at::tensor({0.1f, 2.0f, -1.0f, 1.9f, 0.0f});
  uint64_t rng = 1;
  SamplingOptions greedy;
  greedy.temperature = 0;
  EXPECT_EQ(sample_token(logits, greedy, rng), 1);
  SamplingOptions k1;
  k1.top_k = 1;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(logits, k1, rng), 1);
  SamplingOptions k2;
  k2.top_k = 2;  // only tokens 1 and 3 can come out, both do
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(sample_token(logits, k2, rng));
  EXPECT_EQ(seen, (std::set<int64_t>{1, 3}));
  SamplingOptions p;
  p.top_p = 0.3;  // token 1 alone holds more than 30% of the mass
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(logits, p, rng), 1);
}

TEST(Sampling, VocabLimitKeepsPaddingIdsOut) {
  // Ids 3 and 4 are embedding padding past a 3-token vocabulary: never sampled, even when they score best.
  at::Tensor logits = at::tensor({0.1f, 0.5f, 0.2f, 9.0f, 8.0f});
  uint64_t rng = 3;
  SamplingOptions o;
  o.vocab_limit = 3;
  o.temperature = 0;
  EXPECT_EQ(sample_token(logits, o, rng), 1);
  o.temperature = 5.0;
  for (int i = 0; i < 200; ++i) EXPECT_LT(sample_token(logits, o, rng), 3);
}

TEST(Sampling, FrequenciesFollowTheSoftmaxAtTemperature) {
  at::Tensor logits = at::tensor({0.0f, std::log(3.0f)});  // probabilities 1/4, 3/4
  uint64_t rng = 42;
  SamplingOptions o;
  int ones = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) ones += sample_token(logits, o, rng) == 1;
  EXPECT_NEAR(ones / double(n), 0.75, 0.03);
  o.temperature = 1e6;  // nearly uniform
  ones = 0;
  for (int i = 0; i < n; ++i) ones += sample_token(logits, o, rng) == 1;
  EXPECT_NEAR(ones / double(n), 0.5, 0.03);
}

TEST(Generate, SeededAndGreedyGenerationIsReproducibleAndMatchesFullForward) {
  at::manual_seed(8);
  LanguageModel m(test::small_config("gqe", 8, 4, 1));
  test::randomise_routers(m);
  SamplingOptions o;
  o.max_new_tokens = 12;
  o.seed = 5;
  const std::vector<int64_t> prompt = {3, 14, 15, 9};
  EXPECT_EQ(generate(m, prompt, o), generate(m, prompt, o));
  o.temperature = 0;  // greedy: each token must be the argmax of a full (cache-free) forward
  std::vector<int64_t> out = generate(m, prompt, o);
  ASSERT_EQ(out.size(), 12u);
  std::vector<int64_t> seq = prompt;
  torch::NoGradGuard g;
  m.eval();
  for (int64_t t : out) {
    at::Tensor logits = m.forward(at::tensor(seq, at::kLong).unsqueeze(0)).logits[0][int64_t(seq.size()) - 1];
    EXPECT_EQ(logits.argmax().item<int64_t>(), t);
    seq.push_back(t);
  }
}

TEST(Generate, PromptAtOrOverTheContextLimit) {
  at::manual_seed(8);
  ModelConfig c = test::small_config("gqa", 4, 2);
  c.max_position_embeddings = 16;
  LanguageModel m(c);
  SamplingOptions o;
  o.max_new_tokens = 10;
  o.temperature = 0;
  // Over the limit: an error naming both lengths, not an empty result.
  try {
    generate(m, std::vector<int64_t>(17, 3), o);
    ADD_FAILURE() << "a 17-token prompt in a 16-token context was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the prompt is 17 tokens, longer than the model's context of 16 tokens"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(generate(m, {}, o), Error);
  // At the limit one token still fits (it is never fed back); near it, as many as the context holds.
  EXPECT_EQ(max_new_tokens_after(c, 16), 1);
  EXPECT_EQ(generate(m, std::vector<int64_t>(16, 3), o).size(), 1u);
  EXPECT_EQ(max_new_tokens_after(c, 13), 4);
  EXPECT_EQ(generate(m, std::vector<int64_t>(13, 3), o).size(), 4u);
  EXPECT_EQ(max_new_tokens_after(c, 17), 0);
}

// Prompts of different lengths generated together: every sequence must get the tokens it gets alone
// (greedy), through the right-padded prefill and the ragged decode steps, for every attention variant,
// on the fast CPU path and on the reference path.
TEST(GenerateBatch, GreedyGivesEachPromptsTokensAlone) {
  std::vector<std::vector<int64_t>> prompts = {{5, 9, 2, 44, 17}, {3}, {8, 1, 60, 22, 9, 9, 31, 2, 14, 50, 6, 7, 19},
                                               {40, 41, 42, 43, 44, 45, 46, 47}};
  SamplingOptions opt;
  opt.temperature = 0;
  opt.max_new_tokens = 12;
  for (ModelConfig cfg : test::attention_test_configs()) {
    for (const char* impl : {"fast", "reference"}) {
      cfg.attention.implementation = *enum_from_string<AttentionImplementation>(impl);
      at::manual_seed(7);
      LanguageModel m(cfg);
      test::randomise_routers(m);
      const std::string what = std::string(to_string(cfg.attention.kind)) + " " + to_string(cfg.attention.variant) +
                               " N=" + std::to_string(cfg.attention.num_heads) +
                               " G=" + std::to_string(cfg.attention.num_kv_heads) + " " + impl;
      const auto batch = generate_batch(m, prompts, opt);
      ASSERT_EQ(batch.size(), prompts.size()) << what;
      for (size_t b = 0; b < prompts.size(); ++b)
        EXPECT_EQ(batch[b], generate(m, prompts[b], opt)) << what << " prompt " << b;
    }
  }
}

TEST(GenerateBatch, EachSequenceStopsOnItsOwn) {
  // A stop token, the end of the context for the longest prompt, and max_new_tokens for the rest.
  ModelConfig cfg = test::small_config("gqe", 8, 4);
  cfg.max_position_embeddings = 24;
  at::manual_seed(8);
  LanguageModel m(cfg);
  test::randomise_routers(m);
  SamplingOptions opt;
  opt.temperature = 0;
  opt.max_new_tokens = 10;
  std::vector<std::vector<int64_t>> prompts = {std::vector<int64_t>(20, 3), {1, 2}, {7}};
  std::vector<int64_t> alone1 = generate(m, prompts[1], opt);
  opt.stop_token = alone1.at(3);  // the second prompt stops at its 4th token (or earlier, if it repeats)
  const auto batch = generate_batch(m, prompts, opt);
  for (size_t b = 0; b < prompts.size(); ++b) EXPECT_EQ(batch[b], generate(m, prompts[b], opt)) << "prompt " << b;
  EXPECT_EQ(batch[0].size(), 5u);  // 24 - 20 + 1: the context is full
  EXPECT_LE(batch[1].size(), 4u);
  EXPECT_TRUE(generate_batch(m, {}, opt).empty());
  EXPECT_THROW(generate_batch(m, {{1, 2}, {}}, opt), Error);
}

}  // namespace
}  // namespace gqe
