// The one-pass CPU routing against its reference twin, the plain composition in attention/router.h:
// outputs and the gradient of the logits through every differentiable output, on odd shapes and on
// tie-heavy logits (where the tie rule decides the selection).
#include "gqe/kernels/fused_routing.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gqe/attention/router.h"
#include "gqe/kernels/reference.h"
#include "test_util.h"

namespace gqe {
namespace {

// Gradients that are exactly zero in exact arithmetic (k = M makes the loss's P sum to 1 per group; one
// group with k = 1 makes every weight 1) come out as rounding noise in both: compare against a floor.
double grad_diff(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-3)).item<double>();
}

// Random-weight combination of the differentiable outputs, the same weights for both implementations.
at::Tensor combine(const at::Tensor& sp, const at::Tensor& w, const at::Tensor& aux, const at::Tensor& a,
                   const at::Tensor& b, double c) {
  return (sp * a).sum() + (w * b).sum() + aux * c;
}

void expect_matches_reference(const at::Tensor& logits_in, int64_t k, double eps, const std::string& what) {
  at::Tensor z1 = logits_in.clone().requires_grad_(), z2 = logits_in.clone().requires_grad_();
  kernels::FusedRouting f = kernels::fused_routing(z1, k, eps);
  Routing r = weigh_routing(route_tokens(z2, k, kernels::top_k_reference), eps);
  EXPECT_TRUE(at::equal(f.selected, r.selected)) << what;
  EXPECT_LT(test::max_rel_diff(f.probs, r.probs.detach()), 1e-6) << what;
  EXPECT_LT(test::max_rel_diff(f.selected_probs, r.selected_probs.detach()), 1e-6) << what;
  EXPECT_LT(test::max_rel_diff(f.weights, r.weights.detach()), 1e-6) << what;
  EXPECT_NEAR(f.aux_loss.item<double>(), r.aux_loss.item<double>(), 1e-6) << what;
  EXPECT_FALSE(f.probs.requires_grad()) << what;
  at::Tensor a = at::randn(f.selected_probs.sizes()), b = at::randn(f.weights.sizes());
  const double c = 3.7;
  combine(f.selected_probs, f.weights, f.aux_loss, a, b, c).backward();
  combine(r.selected_probs, r.weights, r.aux_loss, a, b, c).backward();
  EXPECT_LT(grad_diff(z1.grad(), z2.grad()), 1e-5) << what;
  // Each output alone (the others' gradients undefined), as the variants use them.
  for (int which = 0; which < 3; ++which) {
    at::Tensor y1 = z1.detach().clone().requires_grad_(), y2 = z2.detach().clone().requires_grad_();
    kernels::FusedRouting g = kernels::fused_routing(y1, k, eps);
    Routing s = weigh_routing(route_tokens(y2, k, kernels::top_k_reference), eps);
    if (which == 0) (g.selected_probs * a).sum().backward(), (s.selected_probs * a).sum().backward();
    if (which == 1) (g.weights * b).sum().backward(), (s.weights * b).sum().backward();
    if (which == 2) g.aux_loss.backward(), s.aux_loss.backward();
    EXPECT_LT(grad_diff(y1.grad(), y2.grad()), 1e-5) << what << " output " << which;
  }
}

TEST(FusedRouting, MatchesReferenceOutputsAndGradients) {
  at::manual_seed(31);
  for (int64_t M : {1, 2, 3, 5, 8}) {
    for (int64_t k = 1; k <= std::min<int64_t>(M, 3); ++k) {
      for (auto shape : {std::vector<int64_t>{1, 1, 1}, std::vector<int64_t>{2, 7, 3}, std::vector<int64_t>{3, 301, 4}}) {
        const std::string what = "M=" + std::to_string(M) + " k=" + std::to_string(k) + " B*T=" +
                                 std::to_string(shape[0] * shape[1]) + " G=" + std::to_string(shape[2]);
        expect_matches_reference(at::randn({shape[0], shape[1], shape[2], M}) * 2, k, 1e-9, what);
        // Few distinct logits: ties everywhere, the lower index wins.
        expect_matches_reference(at::randint(0, 3, {shape[0], shape[1], shape[2], M}, at::kFloat), k, 1e-9,
                                 what + " (ties)");
      }
    }
  }
}

TEST(FusedRouting, DenominatorFloorMatchesReference) {
  // Near-uniform routing over 4 experts in 3 groups: the selected probabilities sum to about 0.8-1.0, on
  // both sides of eps = 0.9; below it the weights divide by eps and get no gradient through the sum.
  at::manual_seed(32);
  expect_matches_reference(at::randn({2, 50, 3, 4}) * 0.3, 1, 0.9, "eps among the sums");
}

TEST(FusedRouting, SameBitsForAnyThreadCount) {
  at::manual_seed(33);
  at::Tensor logits = at::randn({4, 700, 8, 2});
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  kernels::FusedRouting one = kernels::fused_routing(logits, 1, 1e-9);
  at::set_num_threads(std::max(2, before));
  kernels::FusedRouting many = kernels::fused_routing(logits, 1, 1e-9);
  at::set_num_threads(before);
  EXPECT_TRUE(at::equal(one.probs, many.probs));
  EXPECT_TRUE(at::equal(one.weights, many.weights));
  EXPECT_TRUE(at::equal(one.aux_loss, many.aux_loss));
}

TEST(FusedRouting, RejectsBadArguments) {
  EXPECT_THROW(kernels::fused_routing(at::randn({2, 3, 4}), 1, 1e-9), c10::Error);            // not [B,T,G,M]
  EXPECT_THROW(kernels::fused_routing(at::randn({1, 2, 3, 4}, at::kDouble), 1, 1e-9), c10::Error);  // not fp32
  EXPECT_THROW(kernels::fused_routing(at::randn({1, 2, 3, 4}), 5, 1e-9), c10::Error);         // k > M
}

}  // namespace
}  // namespace gqe
