#include "gqe/model/transformer.h"

#include <gtest/gtest.h>

#include "gqe/core/model_stats.h"
#include "test_util.h"

namespace gqe {
namespace {

std::vector<ModelConfig> all_kinds() {
  std::vector<ModelConfig> out = {test::small_config("gqa", 8, 4), test::small_config("gqa", 4, 4),
                                  test::small_config("gqa", 4, 1)};
  for (const char* v : {"gqe", "hard_concat", "weighted_concat"}) {
    out.push_back(test::small_config("gqe", 8, 4, 1, v));
    out.push_back(test::small_config("gqe", 8, 2, 2, v));
  }
  out.push_back(test::small_config("gqe", 4, 1, 2));
  ModelConfig untied = test::small_config("gqe", 8, 8, 1);
  untied.tie_word_embeddings = false;
  untied.norm_type = NormType::layernorm;
  untied.mlp_type = MlpType::gelu;
  out.push_back(untied);
  return out;
}

std::string label(const ModelConfig& c) { return model_config_to_json(c, -1); }

TEST(LanguageModel, ParameterCountMatchesModelStats) {
  for (const ModelConfig& c : all_kinds()) {
    LanguageModel m(c);
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel();
    EXPECT_EQ(n, count_parameters(c).total()) << label(c);
  }
}

TEST(LanguageModel, Causality) {
  for (const ModelConfig& c : all_kinds()) {
    at::manual_seed(2);
    LanguageModel m(c);
    test::randomise_routers(m);
    m.eval();
    torch::NoGradGuard g;
    at::Tensor tok = at::randint(0, c.vocab_size, {2, 11}, at::kLong);
    at::Tensor changed = tok.clone();
    const int64_t t = 6;
    changed.select(1, t).fill_((tok[0][t].item<int64_t>() + 1) % c.vocab_size);
    at::Tensor a = m.forward(tok).logits, b = m.forward(changed).logits;
    EXPECT_TRUE(at::equal(a.narrow(1, 0, t), b.narrow(1, 0, t))) << label(c);
    EXPECT_FALSE(at::allclose(a.narrow(1, t, 1), b.narrow(1, t, 1))) << label(c);
  }
}

TEST(LanguageModel, PrefillEqualsTokenByTokenDecoding) {
  for (const ModelConfig& c : all_kinds()) {
    at::manual_seed(4);
    LanguageModel m(c);
    test::randomise_routers(m);
    m.eval();
    torch::NoGradGuard g;
    const int64_t T = 9;
    at::Tensor tok = at::randint(0, c.vocab_size, {2, T}, at::kLong);
    at::Tensor full = m.forward(tok).logits;
    // chunked: prefill 4, then one token at a time
    KVCache cache = m.make_cache();
    std::vector<at::Tensor> parts = {m.forward(tok.narrow(1, 0, 4), &cache).logits};
    for (int64_t t = 4; t < T; ++t) parts.push_back(m.forward(tok.narrow(1, t, 1), &cache).logits);
    EXPECT_EQ(cache.length(), T);
    EXPECT_LT(test::max_rel_diff(at::cat(parts, 1), full), 1e-5) << label(c);
  }
}

// Sequences of unequal lengths: a right-padded prefill, the cache made ragged at each sequence's length, then
// several tokens per sequence in one call (how eval scores continuations after shared contexts). Each
// sequence's logits equal its own unpadded forward pass, for every attention variant and path.
TEST(LanguageModel, RaggedCacheTakesSeveralTokensPerSequence) {
  for (const ModelConfig& c : all_kinds()) {
    at::manual_seed(5);
    LanguageModel m(c);
    test::randomise_routers(m);
    m.eval();
    torch::NoGradGuard g;
    const std::vector<int64_t> len = {7, 2, 5};
    const int64_t B = 3, Lmax = 7, T = 4;
    at::Tensor prefix = at::randint(0, c.vocab_size, {B, Lmax}, at::kLong);  // right of len[b]: padding
    at::Tensor next = at::randint(0, c.vocab_size, {B, T}, at::kLong);
    KVCache cache = m.make_cache();
    m.forward(prefix, &cache);
    cache.set_lengths(len);
    at::Tensor got = m.forward(next, &cache).logits;  // [B, T, V]
    EXPECT_EQ(cache.layers[0].lengths(), (std::vector<int64_t>{11, 6, 9}));
    for (int64_t b = 0; b < B; ++b) {
      at::Tensor alone = at::cat({prefix[b].narrow(0, 0, len[size_t(b)]), next[b]}).unsqueeze(0);
      at::Tensor want = m.forward(alone).logits[0].narrow(0, len[size_t(b)], T);
      EXPECT_LT(test::max_rel_diff(got[b], want), 1e-5) << label(c) << " sequence " << b;
    }
    // A decode step after it still lands each token at its own position.
    at::Tensor one = at::randint(0, c.vocab_size, {B, 1}, at::kLong);
    at::Tensor step = m.forward(one, &cache).logits;
    for (int64_t b = 0; b < B; ++b) {
      at::Tensor alone = at::cat({prefix[b].narrow(0, 0, len[size_t(b)]), next[b], one[b]}).unsqueeze(0);
      EXPECT_LT(test::max_rel_diff(step[b][0], m.forward(alone).logits[0][len[size_t(b)] + T]), 1e-5) << label(c);
    }
  }
}

TEST(LanguageModel, TinyModelTrainingLossFalls) {
  at::manual_seed(0);
  ModelConfig c = test::small_config("gqe", 4, 2, 1);
  c.vocab_size = 16;
  LanguageModel m(c);
  torch::optim::AdamW opt(m.parameters(), torch::optim::AdamWOptions(1e-2));
  // a periodic sequence: perfectly predictable after one period
  at::Tensor seq = at::arange(0, 33, at::kLong).remainder(7).unsqueeze(0).repeat({4, 1});
  at::Tensor x = seq.narrow(1, 0, 32), y = seq.narrow(1, 1, 32);
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    LMOutput o = m.forward(x);
    at::Tensor loss = LanguageModel::lm_loss(o.logits, y) + 0.01 * o.aux_loss;
    opt.zero_grad();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_GT(first, 2.0);  // about ln 16 at the start
  EXPECT_LT(last, 0.5 * first);
}

TEST(LanguageModel, ExposesRoutingForAnalytics) {
  LanguageModel m(test::small_config("gqe", 8, 4, 1));
  m.forward(at::randint(0, 61, {1, 5}, at::kLong));
  ASSERT_EQ(m.gqe_layers().size(), 2u);
  EXPECT_EQ(m.gqe_layers()[0]->last_router_probs.sizes(), (at::IntArrayRef{1, 5, 4, 2}));
  LanguageModel dense(test::small_config("gqa", 8, 4));
  EXPECT_TRUE(dense.gqe_layers().empty());
}

}  // namespace
}  // namespace gqe
