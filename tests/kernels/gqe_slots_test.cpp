// W_O's input in one buffer against its reference twin (a product, a sum and a concatenation): outputs
// and the gradients of all three inputs, odd sizes, with and without autograd.
#include "gqe/kernels/gqe_slots.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gqe/kernels/reference.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(GqeSlots, MatchesReferenceOutputsAndGradients) {
  at::manual_seed(41);
  for (auto [B, T, G, k, dh] : {std::array<int64_t, 5>{1, 1, 1, 1, 1}, std::array<int64_t, 5>{2, 7, 3, 2, 5},
                                std::array<int64_t, 5>{3, 150, 8, 1, 64}}) {
    const std::string what = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " G=" + std::to_string(G) +
                             " k=" + std::to_string(k) + " d_h=" + std::to_string(dh);
    at::Tensor o = at::randn({B, T, G * k, dh}), w = at::rand({B, T, G, k}), s = at::randn({B, T, 1, dh});
    {
      torch::NoGradGuard no_grad;
      EXPECT_LT(test::max_rel_diff(kernels::gqe_slots(o, w, s), kernels::gqe_slots_reference(o, w, s)), 1e-6) << what;
    }
    at::Tensor o1 = o.clone().requires_grad_(), w1 = w.clone().requires_grad_(), s1 = s.clone().requires_grad_();
    at::Tensor o2 = o.clone().requires_grad_(), w2 = w.clone().requires_grad_(), s2 = s.clone().requires_grad_();
    at::Tensor got = kernels::gqe_slots(o1, w1, s1), want = kernels::gqe_slots_reference(o2, w2, s2);
    ASSERT_EQ(got.sizes(), (at::IntArrayRef{B, T, (G * k + 2) * dh})) << what;
    EXPECT_LT(test::max_rel_diff(got.detach(), want.detach()), 1e-6) << what;
    at::Tensor probe = at::randn(got.sizes());
    (got * probe).sum().backward();
    (want * probe).sum().backward();
    EXPECT_LT(test::max_rel_diff(o1.grad(), o2.grad()), 1e-5) << what;
    EXPECT_LT(test::max_rel_diff(w1.grad(), w2.grad()), 1e-5) << what;
    EXPECT_LT(test::max_rel_diff(s1.grad(), s2.grad()), 1e-5) << what;
  }
}

TEST(GqeSlots, RejectsMismatchedShapes) {
  at::Tensor o = at::randn({1, 4, 6, 8}), w = at::rand({1, 4, 3, 2}), s = at::randn({1, 4, 1, 8});
  EXPECT_THROW(kernels::gqe_slots(o, at::rand({1, 4, 3, 1}), s), c10::Error);
  EXPECT_THROW(kernels::gqe_slots(o, w, at::randn({1, 4, 1, 7})), c10::Error);
  EXPECT_THROW(kernels::gqe_slots(o.to(at::kDouble), w, s), c10::Error);
}

}  // namespace
}  // namespace gqe
