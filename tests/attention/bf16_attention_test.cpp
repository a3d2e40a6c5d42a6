// bf16 attention for inference (attention_dtype.h): a bf16 KV cache holds each appended value rounded to
// nearest even; the blocks decode from it through the bf16 kernels (or the fp32 kernels on the widened
// values where the CPU lacks AVX512-BF16), and prefill rounds K/V the same way. Against the fp32 path on
// the same weights and inputs, and against the reference path reading the same bf16 cache. The bound is
// from the measured differences (docs/kernels.md), about 3x above the largest seen.
#include <gtest/gtest.h>

#include <iostream>

#include "gqe/attention/attention.h"
#include "gqe/attention/attention_dtype.h"
#include "gqe/attention/kv_cache.h"
#include "test_util.h"

namespace gqe {
namespace {

constexpr double kTolerance = 1e-2;

TEST(Bf16Attention, CacheStoresTheRoundedValuesAndKeepsItsDtype) {
  at::manual_seed(1);
  const at::Tensor k = at::randn({2, 5, 4, 8}), v = at::randn({2, 5, 4, 8});
  LayerKVCache cache;
  {
    CpuAttentionDtypeScope bf16(at::kBFloat16);
    cache.append(k, v);
  }
  // Chosen at the first allocation: later appends and growth keep bf16 whatever the setting is now.
  cache.append(k, v);
  for (int i = 0; i < 10; ++i) cache.append(k.narrow(1, 0, 1), v.narrow(1, 0, 1));
  EXPECT_EQ(cache.keys().scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(cache.keys().narrow(1, 0, 5), k.to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(cache.values().narrow(1, 5, 5), v.to(at::kBFloat16)));
  LayerKVCache fp32;
  fp32.append(k, v);
  EXPECT_EQ(fp32.keys().scalar_type(), at::kFloat);
}

TEST(Bf16Attention, DecodeAndPrefillFollowTheFp32Path) {
  double worst = 0, worst_ref = 0;
  for (const ModelConfig& c : test::attention_test_configs()) {
    at::manual_seed(5);
    auto fast = make_attention(c);
    test::randomise_router_weights(*fast);
    ModelConfig rc = c;
    rc.attention.implementation = AttentionImplementation::reference;
    auto ref = make_attention(rc);
    test::copy_parameters(*fast, *ref);
    torch::NoGradGuard g;
    const int64_t B = 2, T = 70, P = 37;  // a prompt of P tokens, then one token at a time
    at::Tensor x = at::randn({B, T, c.hidden_size});
    auto run = [&](AttentionBlock& a, at::ScalarType dtype) {
      CpuAttentionDtypeScope scope(dtype);
      LayerKVCache cache;
      std::vector<at::Tensor> parts = {a.forward(x.narrow(1, 0, P), &cache).y};
      for (int64_t t = P; t < T; ++t) parts.push_back(a.forward(x.narrow(1, t, 1), &cache).y);
      EXPECT_EQ(cache.keys().scalar_type(), dtype);
      return at::cat(parts, 1);
    };
    const at::Tensor y32 = run(*fast, at::kFloat), y16 = run(*fast, at::kBFloat16), r16 = run(*ref, at::kBFloat16);
    const double e = test::max_rel_diff(y16, y32), e_ref = test::max_rel_diff(y16, r16);
    worst = std::max(worst, e), worst_ref = std::max(worst_ref, e_ref);
    EXPECT_LT(e, kTolerance) << model_config_to_json(c, -1);
    EXPECT_LT(e_ref, kTolerance) << model_config_to_json(c, -1);
  }
  std::cout << "bf16 attention blocks (prefill + decode): max relative difference " << worst << " vs fp32, "
            << worst_ref << " vs the reference path on the same bf16 cache ("
            << (cpu_has_bf16_attention() ? "AVX512-BF16" : "fp32 fallback") << ")\n";
}

TEST(Bf16Attention, TrainingStaysFp32) {
  const ModelConfig c = test::small_config("gqe", 8, 4, 1, "gqe");
  at::manual_seed(6);
  auto a = make_attention(c);
  at::Tensor x = at::randn({1, 20, c.hidden_size}).requires_grad_();
  at::Tensor y32 = a->forward(x, nullptr).y;
  CpuAttentionDtypeScope bf16(at::kBFloat16);
  at::Tensor y = a->forward(x, nullptr).y;  // under autograd: no rounding
  EXPECT_TRUE(at::equal(y, y32));
  y.sum().backward();
  EXPECT_TRUE(x.grad().defined());
}

TEST(Bf16Attention, ExplicitBf16NeedsTheInstructions) {
  EXPECT_EQ(resolve_attention_dtype(AttentionDtype::fp32), at::kFloat);
  EXPECT_EQ(resolve_attention_dtype(AttentionDtype::auto_), cpu_has_bf16_attention() ? at::kBFloat16 : at::kFloat);
  if (cpu_has_bf16_attention()) {
    EXPECT_EQ(resolve_attention_dtype(AttentionDtype::bf16), at::kBFloat16);
  } else {
    EXPECT_THROW(resolve_attention_dtype(AttentionDtype::bf16), Error);
  }
}

}  // namespace
}  // namespace gqe
