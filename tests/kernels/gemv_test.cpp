// The decode-step projection (a few rows times a weight matrix) against its twin, at::linear: odd sizes
// (tails of the vector width and of the output blocks), strided inputs, every row count it takes; and what
// it refuses.
#include "gqe/kernels/gemv.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "test_util.h"

namespace gqe {
namespace {

TEST(LinearRows, MatchesReference) {
  at::manual_seed(7);
  torch::NoGradGuard no_grad;
  for (auto [N, K] : {std::array<int64_t, 2>{1, 1}, std::array<int64_t, 2>{5, 17}, std::array<int64_t, 2>{67, 129},
                      std::array<int64_t, 2>{3072, 1024}, std::array<int64_t, 2>{1031, 64}}) {
    const at::Tensor w = at::randn({N, K});
    for (int64_t rows = 1; rows <= kernels::kLinearRowsMax; ++rows) {
      const std::string what = "N=" + std::to_string(N) + " K=" + std::to_string(K) + " rows=" + std::to_string(rows);
      const at::Tensor x = at::randn({rows, 1, K});
      ASSERT_TRUE(kernels::linear_rows_applies(x, w)) << what;
      const at::Tensor got = kernels::linear_rows(x, w);
      ASSERT_EQ(got.sizes(), (at::IntArrayRef{rows, 1, N})) << what;
      EXPECT_LT(test::max_rel_diff(got, kernels::linear_rows_reference(x, w)), 1e-5) << what;
      // A strided x (a column slice of a wider tensor) gives the same.
      const at::Tensor wide = at::randn({rows, 2 * K}), xs = wide.narrow(1, K, K);
      EXPECT_LT(test::max_rel_diff(kernels::linear_rows(xs, w), kernels::linear_rows_reference(xs, w)), 1e-5) << what;
    }
  }
}

TEST(LinearRows, AppliesToFewFloatRowsWithoutGradientOnly) {
  const at::Tensor w = at::randn({8, 16});
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(kernels::linear_rows_applies(at::randn({1, 1, 16}), w));
    EXPECT_FALSE(kernels::linear_rows_applies(at::randn({kernels::kLinearRowsMax + 1, 16}), w));
    EXPECT_FALSE(kernels::linear_rows_applies(at::randn({1, 16}, at::kDouble), w.to(at::kDouble)));
    EXPECT_FALSE(kernels::linear_rows_applies(at::randn({1, 15}), w));
  }
  const at::Tensor wg = w.clone().requires_grad_();
  EXPECT_FALSE(kernels::linear_rows_applies(at::randn({1, 16}), wg));
}

TEST(LinearRowBlocks, MatchesReference) {
  at::manual_seed(8);
  torch::NoGradGuard no_grad;
  const at::Tensor w = at::randn({16 * 64, 1024}), x = at::randn({1, 1, 1024});
  const at::Tensor starts = at::tensor(std::vector<int64_t>{64, 0, 15 * 64, 7 * 64, 3 * 64 + 5}, at::kLong);
  const at::Tensor got = kernels::linear_row_blocks(x, w, starts, 64);
  ASSERT_EQ(got.sizes(), (at::IntArrayRef{1, 1, 5 * 64}));
  EXPECT_LT(test::max_rel_diff(got, kernels::linear_row_blocks_reference(x, w, starts, 64)), 1e-5);
  const at::Tensor w2 = at::randn({9, 17}), x2 = at::randn({17});
  const at::Tensor s2 = at::tensor(std::vector<int64_t>{2, 0}, at::kLong);
  EXPECT_LT(test::max_rel_diff(kernels::linear_row_blocks(x2, w2, s2, 3), kernels::linear_row_blocks_reference(x2, w2, s2, 3)),
            1e-5);
  // A block past the end, two rows of x, a float index: refused.
  EXPECT_THROW(kernels::linear_row_blocks(x2, w2, at::tensor(std::vector<int64_t>{7}, at::kLong), 3), c10::Error);
  EXPECT_THROW(kernels::linear_row_blocks(at::randn({2, 17}), w2, s2, 3), c10::Error);
  EXPECT_THROW(kernels::linear_row_blocks(x2, w2, s2.to(at::kFloat), 3), c10::Error);
}

TEST(LinearRows, RejectsBadInput) {
  const at::Tensor w = at::randn({8, 16});
  EXPECT_THROW(kernels::linear_rows(at::randn({1, 15}), w), c10::Error);
  EXPECT_THROW(kernels::linear_rows(at::randn({kernels::kLinearRowsMax + 1, 16}), w), c10::Error);
  EXPECT_THROW(kernels::linear_rows(at::randn({1, 16}, at::kDouble), w), c10::Error);
  EXPECT_THROW(kernels::linear_rows(at::randn({1, 16}), at::randn({8, 16, 1})), c10::Error);
}

}  // namespace
}  // namespace gqe
