// The fast attention path of the tensors' device (attention_path.h) against the reference path, at module
// and model level: every variant, k = 1 and 2, G = 1 and G = N, odd lengths and lengths
// past one key tile. Outputs within 1e-5 and every gradient (input, each weight, the router) within 1e-4,
// relative to the largest reference entry. Plus: decoding with a KV cache equals prefill on the fast path.
#include <gtest/gtest.h>

#include "gqe/attention/attention.h"
#include "gqe/model/transformer.h"
#include "test_util.h"

namespace gqe {
namespace {

std::string label(const ModelConfig& c) { return model_config_to_json(c, -1); }

ModelConfig with_impl(ModelConfig c, const std::string& impl) {
  c.attention.implementation = *enum_from_string<AttentionImplementation>(impl);
  return c;
}

TEST(FastAttention, ModuleOutputsAndGradientsMatchReference) {
  for (const ModelConfig& c : test::attention_test_configs()) {
    for (int64_t T : {37, 70}) {
      at::manual_seed(10 + T);
      auto ref = make_attention(with_impl(c, "reference"));
      auto fast = make_attention(with_impl(c, "fast"));
      test::randomise_router_weights(*ref);
      test::copy_parameters(*ref, *fast);
      at::Tensor x = at::randn({2, T, c.hidden_size});
      at::Tensor probe = at::randn({2, T, c.hidden_size});
      at::Tensor xr = x.clone().requires_grad_(), xf = x.clone().requires_grad_();
      AttentionResult rr = ref->forward(xr, nullptr), rf = fast->forward(xf, nullptr);
      EXPECT_LT(test::max_rel_diff(rf.y, rr.y), 1e-5) << label(c) << " T=" << T;
      EXPECT_NEAR(rf.aux_loss.item<double>(), rr.aux_loss.item<double>(), 1e-6) << label(c);
      // The aux loss joins the objective so that the router's gradient from both paths is checked.
      ((rr.y * probe).sum() + 0.5 * rr.aux_loss).backward();
      ((rf.y * probe).sum() + 0.5 * rf.aux_loss).backward();
      EXPECT_LT(test::max_rel_diff(xf.grad(), xr.grad()), 1e-4) << "dx " << label(c) << " T=" << T;
      auto gr = ref->named_parameters();
      for (auto& p : fast->named_parameters()) {
        const at::Tensor& want = gr[p.key()].grad();
        ASSERT_TRUE(p.value().grad().defined()) << p.key() << " " << label(c);
        if (want.abs().max().item<double>() == 0) {
          EXPECT_EQ(p.value().grad().abs().max().item<double>(), 0.0) << p.key() << " " << label(c);
          continue;
        }
        EXPECT_LT(test::max_rel_diff(p.value().grad(), want), 1e-4) << p.key() << " " << label(c) << " T=" << T;
      }
    }
  }
}

TEST(FastAttention, RouterGetsGradientFromTheWeightedSlot) {
  // Variant gqe: the router's gradient from the output (no aux loss) must be non-zero and match.
  ModelConfig c = test::small_config("gqe", 8, 4, 2, "gqe");
  at::manual_seed(3);
  auto ref = make_attention(with_impl(c, "reference"));
  auto fast = make_attention(with_impl(c, "fast"));
  test::randomise_router_weights(*ref);
  test::copy_parameters(*ref, *fast);
  at::Tensor x = at::randn({1, 29, c.hidden_size});
  ref->forward(x, nullptr).y.pow(2).sum().backward();
  fast->forward(x, nullptr).y.pow(2).sum().backward();
  at::Tensor gf = fast->named_parameters()["router.weight"].grad(), gr = ref->named_parameters()["router.weight"].grad();
  EXPECT_GT(gr.abs().max().item<double>(), 0.0);
  EXPECT_LT(test::max_rel_diff(gf, gr), 1e-4);
}

TEST(FastAttention, DecodingWithKVCacheEqualsPrefill) {
  for (const ModelConfig& c : test::attention_test_configs()) {
    at::manual_seed(7);
    auto a = make_attention(c);  // default: fast
    test::randomise_router_weights(*a);
    torch::NoGradGuard g;
    const int64_t T = 23;
    at::Tensor x = at::randn({2, T, c.hidden_size});
    at::Tensor full = a->forward(x, nullptr).y;
    LayerKVCache cache;
    std::vector<at::Tensor> parts = {a->forward(x.narrow(1, 0, 9), &cache).y};  // chunked prefill, then decode
    for (int64_t t = 9; t < T; ++t) parts.push_back(a->forward(x.narrow(1, t, 1), &cache).y);
    EXPECT_LT(test::max_rel_diff(at::cat(parts, 1), full), 1e-5) << label(c);
  }
}

TEST(FastAttention, TokenByTokenDecodeMatchesReferenceAndPrefill) {
  // Every GQE config decodes from an empty cache one token at a time (the CPU path's fused decode kernel
  // for the slot heads and the shared head), against the reference path decoding the same way and
  // against the reference's full prefill; one long case crosses the kernel's tiles and chunks.
  std::vector<std::pair<ModelConfig, int64_t>> runs;
  for (const ModelConfig& c : test::attention_test_configs())
    if (c.attention.is_gqe()) runs.push_back({c, 29});
  runs.push_back({test::small_config("gqe", 8, 4, 1, "gqe", 12, 48), 300});
  for (auto& [c, T] : runs) {
    for (int64_t B : {int64_t(1), int64_t(3)}) {
      if (T > 100 && B > 1) continue;
      at::manual_seed(17 + B);
      auto ref = make_attention(with_impl(c, "reference"));
      auto fast = make_attention(with_impl(c, "fast"));
      test::randomise_router_weights(*ref);
      test::copy_parameters(*ref, *fast);
      torch::NoGradGuard g;
      at::Tensor x = at::randn({B, T, c.hidden_size});
      at::Tensor full = ref->forward(x, nullptr).y;
      LayerKVCache cache_ref, cache_fast;
      std::vector<at::Tensor> parts_ref, parts_fast;
      for (int64_t t = 0; t < T; ++t) {
        parts_ref.push_back(ref->forward(x.narrow(1, t, 1), &cache_ref).y);
        parts_fast.push_back(fast->forward(x.narrow(1, t, 1), &cache_fast).y);
      }
      at::Tensor dec_ref = at::cat(parts_ref, 1), dec_fast = at::cat(parts_fast, 1);
      EXPECT_LT(test::max_rel_diff(dec_fast, dec_ref), 1e-5) << label(c) << " B=" << B << " T=" << T;
      EXPECT_LT(test::max_rel_diff(dec_fast, full), 1e-5) << label(c) << " B=" << B << " T=" << T;
    }
  }
}

TEST(FastAttention, LanguageModelLogitsAndGradientsMatchReference) {
  for (const ModelConfig& c : {test::small_config("gqe", 8, 4, 1, "gqe"), test::small_config("gqa", 8, 2)}) {
    at::manual_seed(11);
    LanguageModel ref(with_impl(c, "reference")), fast(with_impl(c, "fast"));
    test::randomise_routers(ref);
    test::copy_parameters(ref, fast);
    at::Tensor tok = at::randint(0, c.vocab_size, {2, 41}, at::kLong);
    LMOutput orf = ref.forward(tok), off = fast.forward(tok);
    EXPECT_LT(test::max_rel_diff(off.logits, orf.logits), 1e-5) << label(c);
    at::Tensor targets = at::randint(0, c.vocab_size, {2, 41}, at::kLong);
    (LanguageModel::lm_loss(orf.logits, targets) + 0.01 * orf.aux_loss).backward();
    (LanguageModel::lm_loss(off.logits, targets) + 0.01 * off.aux_loss).backward();
    auto gr = ref.named_parameters();
    for (auto& p : fast.named_parameters()) {
      if (!gr[p.key()].grad().defined()) continue;
      EXPECT_LT(test::max_rel_diff(p.value().grad(), gr[p.key()].grad()), 1e-4) << p.key() << " " << label(c);
    }
  }
}

}  // namespace
}  // namespace gqe
