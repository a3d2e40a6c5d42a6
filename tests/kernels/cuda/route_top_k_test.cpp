// The CUDA routing top-k routes exactly like the CPU kernel and the reference on tie-heavy inputs (few
// distinct values, so most rows hold equal probabilities), in every dtype.
#include "gqe/kernels/cuda/route_top_k.h"

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "gqe/kernels/reference.h"
#include "gqe/kernels/route_top_k.h"

namespace gqe {
namespace {

TEST(RouteTopK, RefusesCpuTensors) {
  EXPECT_THROW(kernels::cuda::route_top_k(at::rand({2, 4}), 1), c10::Error);
}

TEST(RouteTopKGpu, MatchesCpuOnTieHeavyInputs) {
  GQE_REQUIRE_GPU();
  at::manual_seed(51);
  for (int64_t M : {1, 2, 3, 8, 17}) {
    for (int64_t k = 1; k <= std::min<int64_t>(M, 4); ++k) {
      at::Tensor p = at::randint(0, 3, {3, 700, 5, M}).to(at::kDouble) / 4.0;  // values in {0, .25, .5}
      at::Tensor want = kernels::route_top_k(p, k);
      EXPECT_TRUE(at::equal(want, kernels::top_k_reference(p, k)));
      for (auto dtype : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf}) {
        at::Tensor got = kernels::cuda::route_top_k(p.to(at::kCUDA, dtype), k);
        EXPECT_TRUE(at::equal(got.cpu(), want)) << "M=" << M << " k=" << k << " " << dtype;
      }
    }
  }
}

}  // namespace
}  // namespace gqe
