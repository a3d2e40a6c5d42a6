// Shapes of W_O, router gradient paths, and a finite-difference check of the whole GQE layer.
#include <gtest/gtest.h>

#include "gqe/attention/attention.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(GQEAttention, OutputProjectionShapeForEachShapeAndVariant) {
  const int64_t shapes[][3] = {{16, 8, 1}, {16, 8, 2}, {8, 4, 1}, {8, 8, 1}, {4, 1, 2}};
  for (const auto& s : shapes)
    for (const char* v : {"gqe", "hard_concat", "weighted_concat"}) {
      ModelConfig c = test::small_config("gqe", s[0], s[1], s[2], v, 4, 24);
      GQEAttention a(c);
      const int64_t kG = s[2] * s[1], slots = std::string(v) == "gqe" ? kG + 2 : kG;
      EXPECT_EQ(a.o_proj->weight.sizes(), (at::IntArrayRef{24, slots * 4})) << v;
      EXPECT_EQ(a.router->weight.sizes(), (at::IntArrayRef{s[0], 24}));
      EXPECT_EQ(bool(a.shared_q_proj), std::string(v) == "gqe");
      EXPECT_EQ(a.router->weight.abs().sum().item<double>(), 0.0);  // zero-initialised
      at::Tensor y = a.forward(at::randn({2, 5, 24}), nullptr).y;
      EXPECT_EQ(y.sizes(), (at::IntArrayRef{2, 5, 24}));
      EXPECT_EQ(a.last_selected.sizes(), (at::IntArrayRef{2, 5, s[1], s[2]}));
      EXPECT_EQ(a.last_router_probs.sizes(), (at::IntArrayRef{2, 5, s[1], s[0] / s[1]}));
    }
}

// Router gradient from the LM-side loss only (no aux loss).
double router_grad_from_output(const std::string& variant) {
  at::manual_seed(5);
  GQEAttention a(test::small_config("gqe", 8, 4, 1, variant));
  { torch::NoGradGuard g; a.router->weight.normal_(0, 0.5); }
  at::Tensor y = a.forward(at::randn({2, 6, 32}), nullptr).y;
  (y * at::randn_like(y)).sum().backward();
  return a.router->weight.grad().defined() ? a.router->weight.grad().abs().sum().item<double>() : 0.0;
}

TEST(GQEAttention, RouterGradientPaths) {
  EXPECT_GT(router_grad_from_output("gqe"), 1e-6);              // through the renormalised slot
  EXPECT_GT(router_grad_from_output("weighted_concat"), 1e-6);  // through the raw probabilities
  EXPECT_EQ(router_grad_from_output("hard_concat"), 0.0);       // hard slots carry no gradient to p
  // ... but hard_concat's router still learns from the aux loss
  at::manual_seed(5);
  GQEAttention a(test::small_config("gqe", 8, 4, 1, "hard_concat"));
  { torch::NoGradGuard g; a.router->weight.normal_(0, 0.5); }
  a.forward(at::randn({2, 6, 32}), nullptr).aux_loss.backward();
  EXPECT_GT(a.router->weight.grad().abs().sum().item<double>(), 1e-6);
}

// Central differences in double precision against autograd, for the input and every parameter, with
// the routing held at the base point's selection (top-k is piecewise constant).
TEST(GQEAttention, FiniteDifferenceGradientCheck) {
  for (const char* variant : {"gqe", "weighted_concat", "hard_concat"}) {
    for (int64_t k : {1, 2}) {
      at::manual_seed(7);
      ModelConfig c = test::small_config("gqe", 8, 2, k, variant, 4, 12);
      GQEAttention a(c);
      a.to(at::kDouble);
      { torch::NoGradGuard g; a.router->weight.normal_(0, 0.8); }
      at::Tensor x = at::randn({2, 5, 12}, at::kDouble).requires_grad_(true);
      at::Tensor probe = at::randn({2, 5, 12}, at::kDouble);
      a.forward(x.detach(), nullptr);
      a.forced_selection = a.last_selected.clone();
      auto loss = [&]() {
        AttentionResult r = a.forward(x, nullptr);
        return (r.y * probe).sum() + 0.3 * r.aux_loss;
      };
      loss().backward();
      std::vector<std::pair<std::string, at::Tensor>> wrt = {{"x", x}};
      for (auto& p : a.named_parameters()) wrt.emplace_back(p.key(), p.value());
      const double h = 1e-6;
      for (auto& [name, t] : wrt) {
        at::Tensor grad = t.grad().defined() ? t.grad().clone() : at::zeros_like(t);
        at::Tensor flat = t.detach().view({-1});
        at::Tensor gflat = grad.view({-1});
        for (int64_t n = 0; n < 6; ++n) {
          const int64_t i = (n * 7919 + 13) % flat.numel();
          torch::NoGradGuard g;
          const double orig = flat[i].item<double>();
          flat[i] = orig + h;
          const double up = loss().item<double>();
          flat[i] = orig - h;
          const double down = loss().item<double>();
          flat[i] = orig;
          const double fd = (up - down) / (2 * h);
          EXPECT_NEAR(gflat[i].item<double>(), fd, 1e-6 + 1e-5 * std::abs(fd))
              << variant << " k=" << k << " d/d" << name << "[" << i << "]";
        }
      }
    }
  }
}

}  // namespace
}  // namespace gqe
