// The grouped-GEMM routed projection of the CUDA path against its reference twin (dense projection, then
// the selected experts), outputs and gradients of x and W: both GEMM strategies, k = 1 and 2, G = 1, G = N,
// experts that receive no token, odd sizes. On the CPU in every CUDA build; on a GPU in fp32 and bf16.
#include "gqe/kernels/cuda/grouped_query_projection.h"

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "gqe/kernels/reference.h"
#include "test_util.h"

namespace gqe {
namespace {

using kernels::cuda::GroupedGemm;

struct Case {
  int64_t B, T, d, G, M, k, dh;
};

std::vector<Case> cases() {
  return {{2, 13, 24, 3, 4, 2, 8}, {1, 9, 37, 2, 3, 1, 6}, {1, 17, 16, 1, 4, 2, 8}, {2, 5, 32, 4, 1, 1, 16},
          {1, 64, 64, 8, 2, 1, 64}};
}

void check(const Case& c, at::Device device, at::ScalarType dtype, GroupedGemm gemm, double tol, bool starve) {
  at::Tensor x = at::randn({c.B, c.T, c.d}, at::kDouble), W = at::randn({c.G * c.M * c.dh, c.d}, at::kDouble);
  at::Tensor sel = std::get<1>(at::rand({c.B, c.T, c.G, c.M}).sort(/*dim=*/-1)).narrow(-1, 0, c.k).contiguous();
  if (starve && c.M > c.k) sel = sel.clamp_max(c.k - 1);  // experts k..M-1 of every group get no token
  at::Tensor probe = at::randn({c.B, c.T, c.G * c.k, c.dh}, at::kDouble);
  at::Tensor xd = x.to(device, dtype).clone().requires_grad_(), Wd = W.to(device, dtype).clone().requires_grad_();
  at::Tensor got = kernels::cuda::grouped_query_projection(xd, Wd, sel.to(device), c.M, c.dh, gemm);
  (got * probe.to(device, dtype)).sum().backward();
  at::Tensor xr = x.clone().requires_grad_(), Wr = W.clone().requires_grad_();
  at::Tensor want = kernels::routed_query_projection_reference(xr, Wr, sel, c.M, c.dh);
  (want * probe).sum().backward();
  auto host = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); };
  const std::string what = "B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " G=" + std::to_string(c.G) +
                           " M=" + std::to_string(c.M) + " k=" + std::to_string(c.k) + " gemm=" +
                           std::to_string(int(gemm)) + (starve ? " starved" : "");
  EXPECT_LT(test::max_rel_diff(host(got), want), tol) << "q " << what;
  EXPECT_LT(test::max_rel_diff(host(xd.grad()), xr.grad()), tol) << "dx " << what;
  EXPECT_LT(test::max_rel_diff(host(Wd.grad()), Wr.grad()), tol) << "dW " << what;
}

TEST(GroupedQueryProjection, MatchesReferenceOnCpu) {
  at::manual_seed(41);
  for (const Case& c : cases()) {
    const bool aligned = c.d % 4 == 0 && c.dh % 4 == 0;  // 16-byte fp32 rows, which the grouped matmul needs
    for (bool starve : {false, true}) {
      check(c, at::kCPU, at::kFloat, GroupedGemm::automatic, 1e-5, starve);
      check(c, at::kCPU, at::kFloat, GroupedGemm::per_expert, 1e-5, starve);
      if (aligned) check(c, at::kCPU, at::kFloat, GroupedGemm::grouped_mm, 1e-5, starve);
    }
  }
}

TEST(GroupedQueryProjection, RejectsInconsistentShapes) {
  at::Tensor x = at::randn({1, 3, 8}), W = at::randn({2 * 2 * 4, 8});
  at::Tensor sel = at::zeros({1, 3, 2, 1}, at::kLong);
  EXPECT_THROW(kernels::cuda::grouped_query_projection(x, W, sel, 2, 8), c10::Error);  // d_h 8 does not fit W
  EXPECT_THROW(kernels::cuda::grouped_query_projection(x, W, sel.to(at::kInt), 2, 4), c10::Error);
}

TEST(GroupedQueryProjectionGpu, MatchesReferenceFp32AndBf16) {
  GQE_REQUIRE_GPU();
  at::manual_seed(42);
  for (const Case& c : cases()) {
    for (bool starve : {false, true}) {
      check(c, at::kCUDA, at::kFloat, GroupedGemm::automatic, 1e-5, starve);
      check(c, at::kCUDA, at::kBFloat16, GroupedGemm::automatic, 2e-2, starve);  // grouped where rows align
      check(c, at::kCUDA, at::kBFloat16, GroupedGemm::per_expert, 2e-2, starve);
    }
  }
}

}  // namespace
}  // namespace gqe
