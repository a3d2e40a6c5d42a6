// The CPU routing top-k against its reference twin (a stable descending sort) on tie-heavy inputs: few
// distinct values, so most rows hold equal probabilities and the tie rule decides.
#include "gqe/kernels/route_top_k.h"

#include <gtest/gtest.h>

#include "gqe/kernels/reference.h"

namespace gqe {
namespace {

TEST(RouteTopK, MatchesReferenceOnTieHeavyInputs) {
  at::manual_seed(21);
  for (int64_t M : {1, 2, 3, 8, 17}) {
    for (int64_t k = 1; k <= std::min<int64_t>(M, 4); ++k) {
      for (auto dtype : {at::kFloat, at::kDouble}) {
        at::Tensor p = at::randint(0, 3, {3, 7, 5, M}).to(dtype) / 4.0;  // values in {0, .25, .5}
        EXPECT_TRUE(at::equal(kernels::route_top_k(p, k), kernels::top_k_reference(p, k)))
            << "M=" << M << " k=" << k << " " << dtype;
      }
    }
  }
}

TEST(RouteTopK, RejectsBadArguments) {
  EXPECT_THROW(kernels::route_top_k(at::rand({2, 4}), 5), c10::Error);
  EXPECT_THROW(kernels::route_top_k(at::rand({2, 4}), 0), c10::Error);
}

}  // namespace
}  // namespace gqe
