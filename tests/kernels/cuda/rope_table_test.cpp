// RoPE from cached tables against its reference twin, bit for bit: positions from 0 and from an offset,
// tables grown by a later, longer call, a ragged batch's per-sequence positions, fp32, fp64 and bf16.
#include "gqe/kernels/cuda/rope_table.h"

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "gqe/kernels/reference.h"

namespace gqe {
namespace {

void check_equal(at::Device device, at::ScalarType dtype) {
  for (double theta : {10000.0, 500000.0}) {
    for (auto [T, start] : std::vector<std::pair<int64_t, int64_t>>{{7, 0}, {33, 5}, {1, 3000}, {300, 2000}}) {
      at::Tensor x = at::randn({2, T, 3, 16}, at::TensorOptions(device).dtype(dtype));
      EXPECT_TRUE(at::equal(kernels::cuda::rope_cached(x, start, theta), kernels::rope_reference(x, start, theta)))
          << "T=" << T << " start=" << start << " theta=" << theta << " " << dtype;
    }
    at::Tensor x = at::randn({4, 1, 2, 8}, at::TensorOptions(device).dtype(dtype));
    const std::vector<int64_t> pos = {0, 17, 4100, 3};
    at::Tensor got = kernels::cuda::rope_cached_at(x, pos, theta);
    for (int64_t b = 0; b < 4; ++b)
      EXPECT_TRUE(at::equal(got.narrow(0, b, 1), kernels::rope_reference(x.narrow(0, b, 1), pos[size_t(b)], theta)))
          << "sequence " << b << " at " << pos[size_t(b)] << " " << dtype;
  }
}

TEST(RopeTable, EqualsReferenceBitForBitOnCpu) {
  at::manual_seed(61);
  for (at::ScalarType t : {at::kFloat, at::kDouble, at::kBFloat16}) check_equal(at::kCPU, t);
}

TEST(RopeTable, RejectsBadShapesAndPositions) {
  EXPECT_THROW(kernels::cuda::rope_cached(at::randn({1, 2, 3, 5}), 0, 1e4), c10::Error);   // odd d_h
  EXPECT_THROW(kernels::cuda::rope_cached(at::randn({1, 2, 3, 4}), -1, 1e4), c10::Error);  // negative start
  EXPECT_THROW(kernels::cuda::rope_cached_at(at::randn({2, 1, 3, 4}), {1}, 1e4), c10::Error);
  EXPECT_THROW(kernels::cuda::rope_cached_at(at::randn({1, 1, 3, 4}), {-2}, 1e4), c10::Error);
}

TEST(RopeTableGpu, EqualsReferenceBitForBit) {
  GQE_REQUIRE_GPU();
  at::manual_seed(62);
  for (at::ScalarType t : {at::kFloat, at::kBFloat16}) check_equal(at::kCUDA, t);
}

}  // namespace
}  // namespace gqe
