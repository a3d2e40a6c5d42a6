#include "gqe/attention/router.h"

#include <gtest/gtest.h>

#include <set>

#include "gqe/attention/attention.h"
#include "gqe/core/autocast.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(Router, ProbabilitiesSumToOnePerGroupAndKDistinctExperts) {
  at::manual_seed(1);
  const int64_t B = 2, T = 7, G = 3, M = 4, k = 2;
  Routing r = route_tokens(at::randn({B, T, G, M}), k);
  EXPECT_TRUE(at::allclose(r.probs.sum(-1), at::ones({B, T, G}), 1e-6, 1e-6));
  ASSERT_EQ(r.selected.sizes(), (at::IntArrayRef{B, T, G, k}));
  auto sel = r.selected.accessor<int64_t, 4>();
  auto p = r.probs.accessor<float, 4>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t g = 0; g < G; ++g) {
        std::set<int64_t> s;
        for (int64_t j = 0; j < k; ++j) s.insert(sel[b][t][g][j]);
        EXPECT_EQ(int64_t(s.size()), k);
        // the selected are the k largest, in descending order
        EXPECT_GE(p[b][t][g][sel[b][t][g][0]], p[b][t][g][sel[b][t][g][1]]);
        for (int64_t m = 0; m < M; ++m)
          if (!s.count(m)) EXPECT_LE(p[b][t][g][m], p[b][t][g][sel[b][t][g][k - 1]]);
      }
  EXPECT_TRUE(at::equal(r.selected_probs, r.probs.gather(-1, r.selected)));
}

TEST(Router, SelectionEqualsAStableDescendingSort) {
  // Probabilities on a coarse grid, so that ties are frequent; several M and k.
  at::manual_seed(2);
  for (int64_t M : {1, 2, 3, 8}) {
    for (int64_t k = 1; k <= std::min<int64_t>(M, 3); ++k) {
      at::Tensor logits = at::randint(0, 3, {2, 9, 4, M}, at::kFloat);
      Routing r = route_tokens(logits, k);
      auto sorted = at::sort(r.probs, /*stable=*/true, /*dim=*/-1, /*descending=*/true);
      EXPECT_TRUE(at::equal(r.selected, std::get<1>(sorted).narrow(-1, 0, k))) << "M=" << M << " k=" << k;
    }
  }
}

TEST(Router, TiesBreakByIndex) {
  Routing r = route_tokens(at::zeros({1, 5, 2, 4}), 2);  // a zero-initialised router
  EXPECT_TRUE(at::equal(r.selected.select(-1, 0), at::zeros({1, 5, 2}, at::kLong)));
  EXPECT_TRUE(at::equal(r.selected.select(-1, 1), at::ones({1, 5, 2}, at::kLong)));
}

TEST(Router, RenormalisedWeightsAreJointAcrossGroups) {
  // two groups, k = 1: selected probabilities 0.6 and 0.9 -> weights 0.4 and 0.6
  at::Tensor p = at::tensor({0.6, 0.9}, at::kDouble).view({1, 1, 2, 1});
  at::Tensor w = renormalised_weights(p, 1e-9);
  EXPECT_NEAR(w[0][0][0][0].item<double>(), 0.6 / 1.5, 1e-12);
  EXPECT_NEAR(w[0][0][1][0].item<double>(), 0.9 / 1.5, 1e-12);
  // the denominator is clamped
  at::Tensor tiny = at::full({1, 1, 2, 1}, 1e-12, at::kDouble);
  EXPECT_NEAR(renormalised_weights(tiny, 1e-9)[0][0][0][0].item<double>(), 1e-12 / 1e-9, 1e-15);
}

Routing manual_routing(const std::vector<double>& probs_m0, const std::vector<int64_t>& sel) {
  // one group, M = 2, top-1, T tokens
  const int64_t T = int64_t(sel.size());
  Routing r;
  at::Tensor p0 = at::tensor(probs_m0, at::kDouble).view({1, T, 1, 1});
  r.probs = at::cat({p0, 1 - p0}, -1);
  r.selected = at::tensor(sel, at::kLong).view({1, T, 1, 1});
  r.selected_probs = r.probs.gather(-1, r.selected);
  return r;
}

TEST(Router, AuxLossIsOneForBalancedTop1AndLargerWhenCollapsed) {
  EXPECT_NEAR(load_balancing_loss(manual_routing({0.5, 0.5, 0.5, 0.5}, {0, 1, 0, 1})).item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(load_balancing_loss(manual_routing({0.9, 0.1, 0.8, 0.3}, {0, 1, 0, 1})).item<double>(), 1.0, 1e-12);
  const double collapsed = load_balancing_loss(manual_routing({0.9, 0.9, 0.9, 0.9}, {0, 0, 0, 0})).item<double>();
  EXPECT_NEAR(collapsed, 2 * 0.9, 1e-12);  // M * f * P = 2 * 1 * 0.9
  EXPECT_GT(collapsed, 1.5);
  // Averaged over groups: a balanced and a collapsed group.
  Routing a = manual_routing({0.5, 0.5}, {0, 1}), b = manual_routing({0.9, 0.9}, {0, 0});
  Routing both;
  both.probs = at::cat({a.probs, b.probs}, 2);
  both.selected = at::cat({a.selected, b.selected}, 2);
  both.selected_probs = both.probs.gather(-1, both.selected);
  EXPECT_NEAR(load_balancing_loss(both).item<double>(), (1.0 + 1.8) / 2, 1e-12);
}

// Under autocast (bf16 matrix products) the router's logits, softmax and top-k stay fp32, so a model trained
// under autocast routes as the fp32 model it saves. CPU autocast stands in for CUDA's: the same dispatch
// mechanism, observable without a GPU.
struct CpuAutocast {
  CpuAutocast() { set_cpu_autocast(true); }
  ~CpuAutocast() { set_cpu_autocast(false); }
};

TEST(Router, LogitsStayFp32UnderAutocast) {
  at::manual_seed(3);
  at::Tensor x = at::randn({2, 5, 24}), w = at::randn({8, 24});
  const at::Tensor want = at::matmul(x, w.t());
  CpuAutocast ac;
  ASSERT_EQ(at::linear(x, w).scalar_type(), at::kBFloat16) << "autocast is not on: the test proves nothing";
  const at::Tensor got = router_logits(x, w);
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5));
  EXPECT_EQ(router_logits(x.to(at::kDouble), w.to(at::kDouble)).scalar_type(), at::kDouble);
  EXPECT_EQ(router_logits(x.to(at::kBFloat16), w).scalar_type(), at::kFloat);
}

TEST(Router, GqeBlockRoutesAsInFp32UnderAutocast) {
  ModelConfig c = test::small_config("gqe", 8, 2, 1, "gqe", 16, 64);
  c.attention.implementation = AttentionImplementation::reference;
  at::manual_seed(4);
  auto a = std::make_shared<GQEAttention>(c);
  test::randomise_router_weights(*a);
  // Near-ties everywhere: in each group experts 0 and 1 have almost the same router row, so their logits
  // differ by less than bf16's rounding of them.
  {
    torch::NoGradGuard g;
    at::Tensor w = a->router->weight.view({c.attention.num_kv_heads, c.attention.experts_per_group(), -1});
    w.select(1, 1).copy_(w.select(1, 0) + 1e-3 * at::randn_like(w.select(1, 0)));
  }
  at::Tensor x = at::randn({2, 33, c.hidden_size});
  torch::NoGradGuard g;
  a->forward(x, nullptr);
  const at::Tensor want = a->last_selected.clone();
  {
    CpuAutocast ac;
    a->forward(x, nullptr);
  }
  EXPECT_EQ(a->last_router_probs.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(a->last_selected, want));
}

}  // namespace
}  // namespace gqe
