#include "gqe/attention/rope.h"

#include <gtest/gtest.h>

namespace gqe {
namespace {

TEST(Rope, PreservesNormsAndDependsOnlyOnRelativePosition) {
  at::manual_seed(3);
  at::Tensor q = at::randn({1, 1, 1, 16}, at::kDouble), k = at::randn({1, 1, 1, 16}, at::kDouble);
  auto dot = [&](int64_t m, int64_t n) {
    return (apply_rope(q, m, 10000.0) * apply_rope(k, n, 10000.0)).sum().item<double>();
  };
  EXPECT_NEAR(apply_rope(q, 37, 10000.0).norm().item<double>(), q.norm().item<double>(), 1e-12);
  EXPECT_NEAR(dot(5, 2), dot(105, 102), 1e-10);
  EXPECT_GT(std::abs(dot(5, 2) - dot(5, 4)), 1e-6);
  EXPECT_TRUE(at::allclose(apply_rope(q, 0, 10000.0), q));  // position 0 is the identity
  // positions are carried: rotating a 3-token sequence from start 4 == tokens at 4, 5, 6
  at::Tensor x = at::randn({1, 3, 2, 8}, at::kDouble);
  at::Tensor full = apply_rope(x, 4, 500.0);
  EXPECT_TRUE(at::allclose(full.narrow(1, 2, 1), apply_rope(x.narrow(1, 2, 1), 6, 500.0)));
}

}  // namespace
}  // namespace gqe
