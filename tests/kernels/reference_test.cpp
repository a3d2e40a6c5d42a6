// Properties of the reference twins themselves (kernels/reference.h), which every fast kernel is tested
// against: RoPE's rotation properties and the routing top-k's tie rule.
#include "gqe/kernels/reference.h"

#include <gtest/gtest.h>

namespace gqe {
namespace {

TEST(RopeReference, PreservesNormsAndDependsOnlyOnRelativePosition) {
  at::manual_seed(3);
  at::Tensor q = at::randn({1, 1, 1, 16}, at::kDouble), k = at::randn({1, 1, 1, 16}, at::kDouble);
  auto rope = [](const at::Tensor& x, int64_t pos, double theta) { return kernels::rope_reference(x, pos, theta); };
  auto dot = [&](int64_t m, int64_t n) { return (rope(q, m, 10000.0) * rope(k, n, 10000.0)).sum().item<double>(); };
  EXPECT_NEAR(rope(q, 37, 10000.0).norm().item<double>(), q.norm().item<double>(), 1e-12);
  EXPECT_NEAR(dot(5, 2), dot(105, 102), 1e-10);
  EXPECT_GT(std::abs(dot(5, 2) - dot(5, 4)), 1e-6);
  EXPECT_TRUE(at::allclose(rope(q, 0, 10000.0), q));  // position 0 is the identity
  // positions are carried: rotating a 3-token sequence from start 4 == tokens at 4, 5, 6
  at::Tensor x = at::randn({1, 3, 2, 8}, at::kDouble);
  at::Tensor full = rope(x, 4, 500.0);
  EXPECT_TRUE(at::allclose(full.narrow(1, 2, 1), rope(x.narrow(1, 2, 1), 6, 500.0)));
}

TEST(TopKReference, DescendingWithTiesToTheLowerIndex) {
  at::Tensor p = at::tensor({0.1, 0.3, 0.3, 0.3, 0.0, 0.25, 0.25, 0.5}, at::kDouble).view({2, 4});
  at::Tensor sel = kernels::top_k_reference(p, 3);
  EXPECT_TRUE(at::equal(sel, at::tensor({1, 2, 3, 3, 1, 2}, at::kLong).view({2, 3})));
  // All equal (a zero-initialised router): expert 0, then 1, ...
  EXPECT_TRUE(at::equal(kernels::top_k_reference(at::full({5, 4}, 0.25), 2),
                        at::tensor({0, 1}, at::kLong).repeat({5, 1})));
}

}  // namespace
}  // namespace gqe
