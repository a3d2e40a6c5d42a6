// The one-pass RoPE kernel against its reference twin rope_reference (src/gqe/kernels/reference.h): outputs and
// gradients on fresh random inputs, odd lengths, offsets (decode / chunked prefill), one head, d_h = 2.
#include <gtest/gtest.h>

#include "gqe/kernels/reference.h"
#include "gqe/kernels/rope.h"
#include "test_util.h"

namespace gqe {
namespace {

struct RopeCase {
  int64_t B, T, H, dh, start;
  double theta;
};

TEST(RopeKernel, OutputsAndGradientsMatchReference) {
  const RopeCase cases[] = {{1, 1, 1, 2, 0, 10000.0},     {2, 37, 3, 6, 0, 10000.0}, {1, 70, 8, 64, 5, 10000.0},
                            {3, 5, 2, 32, 4093, 500000.0}, {1, 1, 9, 64, 70000, 10000.0}};
  for (const RopeCase& c : cases) {
    at::manual_seed(c.T * 31 + c.dh);
    at::Tensor x = at::randn({c.B, c.T, c.H, c.dh}), probe = at::randn({c.B, c.T, c.H, c.dh});
    at::Tensor xr = x.clone().requires_grad_(), xf = x.clone().requires_grad_();
    at::Tensor yr = kernels::rope_reference(xr, c.start, c.theta), yf = kernels::rope(xf, c.start, c.theta);
    const std::string at = "B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
                           " d_h=" + std::to_string(c.dh) + " start=" + std::to_string(c.start);
    EXPECT_LT(test::max_rel_diff(yf, yr), 1e-5) << at;
    (yr * probe).sum().backward();
    (yf * probe).sum().backward();
    EXPECT_LT(test::max_rel_diff(xf.grad(), xr.grad()), 1e-5) << at;
  }
}

TEST(RopeKernel, NonContiguousInputIsRotatedLikeItsContiguousCopy) {
  at::Tensor x = at::randn({2, 11, 4, 16}).transpose(1, 2);  // [2, 4, 11, 16] viewed as B, T, H, d_h
  EXPECT_TRUE(at::equal(kernels::rope(x, 3, 10000.0), kernels::rope(x.contiguous(), 3, 10000.0)));
  EXPECT_LT(test::max_rel_diff(kernels::rope(x, 3, 10000.0), kernels::rope_reference(x, 3, 10000.0)), 1e-5);
}

TEST(RopeKernel, TableFirstFormedInInferenceModeServesATrainingStepLater) {
  // The kernel keeps its angle tables between calls; one made during inference (evaluation, generation from
  // Python) must still be savable for a backward pass when training follows.
  const double theta = 4321.0;  // a table no other test forms
  {
    c10::InferenceMode inference;
    kernels::rope(at::randn({1, 9, 2, 8}), 0, theta);
  }
  at::Tensor x = at::randn({1, 9, 2, 8}).requires_grad_();
  kernels::rope(x, 0, theta).sum().backward();
  EXPECT_TRUE(x.grad().defined());
}

TEST(RopeKernel, RejectsOddHeadDimAndOtherDtypes) {
  EXPECT_THROW(kernels::rope(at::randn({1, 2, 1, 5}), 0, 10000.0), c10::Error);
  EXPECT_THROW(kernels::rope(at::randn({1, 2, 1, 4}, at::kDouble), 0, 10000.0), c10::Error);
}

}  // namespace
}  // namespace gqe
