#include <gtest/gtest.h>

#include <torch/optim/adamw.h>

#include "gqe/core/error.h"
#include "gqe/train/adamw.h"

namespace gqe {

// Our AdamW against libtorch's on the same gradients: same weights after several steps.
TEST(AdamW, MatchesLibtorchAdamW) {
  at::manual_seed(3);
  at::Tensor w0 = at::randn({5, 4}), b0 = at::randn({4});
  at::Tensor wa = w0.clone().requires_grad_(), ba = b0.clone().requires_grad_();
  at::Tensor wb = w0.clone().requires_grad_(), bb = b0.clone().requires_grad_();
  AdamWOptions o;
  AdamW ours({{"layers.0.mlp.up_proj.weight", wa}, {"layers.0.attn_norm.weight", ba}}, o);
  EXPECT_TRUE(ours.decays(0));
  EXPECT_FALSE(ours.decays(1));
  std::vector<torch::optim::OptimizerParamGroup> groups;
  auto base = torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-7);
  groups.emplace_back(std::vector<at::Tensor>{wb}, std::make_unique<torch::optim::AdamWOptions>(base.weight_decay(0.1)));
  groups.emplace_back(std::vector<at::Tensor>{bb}, std::make_unique<torch::optim::AdamWOptions>(base.weight_decay(0.0)));
  torch::optim::AdamW ref(std::move(groups), base);
  for (int s = 0; s < 5; ++s) {
    at::Tensor gw = at::randn({5, 4}), gb = at::randn({4});
    ours.zero_grad();
    ref.zero_grad();
    wa.mutable_grad() = gw.clone();
    ba.mutable_grad() = gb.clone();
    wb.mutable_grad() = gw.clone();
    bb.mutable_grad() = gb.clone();
    ours.step(1e-2);
    ref.step();
  }
  EXPECT_TRUE(at::allclose(wa, wb, 1e-6, 1e-7));
  EXPECT_TRUE(at::allclose(ba, bb, 1e-6, 1e-7));
  EXPECT_FALSE(at::allclose(wa, w0));
  EXPECT_EQ(ours.steps_taken(), 5);
}

TEST(AdamW, DecayRuleExcludesNormsBiasesAndEmbeddings) {
  EXPECT_FALSE(default_weight_decay("embed_tokens.weight", at::zeros({10, 4})));
  EXPECT_FALSE(default_weight_decay("layers.1.mlp_norm.weight", at::zeros({4})));
  EXPECT_FALSE(default_weight_decay("layers.1.attn_norm.bias", at::zeros({4})));
  EXPECT_TRUE(default_weight_decay("layers.1.attn.q_proj.weight", at::zeros({4, 4})));
  EXPECT_TRUE(default_weight_decay("layers.1.attn.router.weight", at::zeros({4, 4})));
  EXPECT_TRUE(default_weight_decay("lm_head.weight", at::zeros({10, 4})));
}

TEST(AdamW, StateRoundTripAndShapeCheck) {
  at::Tensor w = at::ones({3, 2}).requires_grad_();
  AdamW a({{"w", w}}, AdamWOptions{});
  w.mutable_grad() = at::full({3, 2}, 0.5);
  a.step(0.1);
  auto st = a.state_tensors();
  ASSERT_EQ(st.size(), 2u);
  at::Tensor w2 = w.detach().clone().requires_grad_();
  AdamW b({{"w", w2}}, AdamWOptions{});
  b.load_state(st, a.steps_taken(), "opt");
  w.mutable_grad() = at::full({3, 2}, -0.25);
  w2.mutable_grad() = at::full({3, 2}, -0.25);
  a.step(0.1);
  b.step(0.1);
  EXPECT_TRUE(at::equal(w, w2));
  at::Tensor v = at::ones({2, 2}).requires_grad_();
  AdamW c({{"w", v}}, AdamWOptions{});
  EXPECT_THROW(c.load_state(st, 1, "opt"), FormatError);
  EXPECT_THROW(c.load_state({}, 1, "opt"), FormatError);
}

}  // namespace gqe
