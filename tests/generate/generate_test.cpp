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

}  // namespace
}  // namespace gqe
