// GQE's attention in one SDPA call (slot heads and the shared head over the G KV heads plus the mean head)
// against its reference twin, flash_attention_reference twice: outputs and the gradients of q, the shared
// query, K, V (through the mean too): k = 1 and 2, G = 1, prefill, a chunk against a cache, a decode step,
// odd lengths. On the CPU in every CUDA build; on a GPU in fp32 and bf16.
#include "gqe/kernels/cuda/gqe_attention.h"

#include <gtest/gtest.h>

#include <sstream>

#include "cuda_test_util.h"
#include "gqe/kernels/reference.h"
#include "test_util.h"

namespace gqe {
namespace {

using kernels::cuda::SharedHeadLayout;

struct Case {
  int64_t B, Tq, Tk, q_start, G, k, dh;
};

std::vector<Case> cases() {
  return {
      {2, 37, 37, 0, 4, 1, 16},   // prefill, k = 1: one call of G + 1 heads
      {1, 29, 29, 0, 2, 2, 8},    // k = 2: the shared query padded to k heads
      {1, 21, 21, 0, 1, 2, 8},    // G = 1
      {2, 1, 41, 40, 4, 1, 16},   // a decode step
      {1, 13, 50, 37, 3, 1, 24},  // a chunk against a cache
  };
}

std::string describe(const Case& c, SharedHeadLayout layout) {
  std::ostringstream o;
  o << "B=" << c.B << " Tq=" << c.Tq << " Tk=" << c.Tk << " q_start=" << c.q_start << " G=" << c.G << " k=" << c.k
    << " dh=" << c.dh << " layout=" << int(layout);
  return o.str();
}

void check(const Case& c, SharedHeadLayout layout, at::Device device, at::ScalarType dtype, double tol, bool grad) {
  const int64_t H = c.G * c.k;
  at::Tensor q = at::randn({c.B, c.Tq, H, c.dh}, at::kDouble), qs = at::randn({c.B, c.Tq, 1, c.dh}, at::kDouble);
  at::Tensor K = at::randn({c.B, c.Tk, c.G, c.dh}, at::kDouble), V = at::randn({c.B, c.Tk, c.G, c.dh}, at::kDouble);
  at::Tensor probe = at::randn({c.B, c.Tq, H, c.dh}, at::kDouble), probe_s = at::randn({c.B, c.Tq, 1, c.dh}, at::kDouble);
  auto leaf = [&](const at::Tensor& t) { return t.to(device, dtype).clone().requires_grad_(grad); };
  at::Tensor qd = leaf(q), qsd = leaf(qs), Kd = leaf(K), Vd = leaf(V);
  auto [slots, shared] = kernels::cuda::gqe_attention(qd, qsd, Kd, Vd, Kd.mean(2, true), Vd.mean(2, true), c.q_start, layout);
  at::Tensor qr = q.clone().requires_grad_(), qsr = qs.clone().requires_grad_(), Kr = K.clone().requires_grad_(),
             Vr = V.clone().requires_grad_();
  at::Tensor want = kernels::flash_attention_reference(qr, Kr, Vr, c.q_start);
  at::Tensor want_s = kernels::flash_attention_reference(qsr, Kr.mean(2, true), Vr.mean(2, true), c.q_start);
  auto host = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); };
  const std::string what = describe(c, layout);
  ASSERT_EQ(slots.sizes(), want.sizes()) << what;
  ASSERT_EQ(shared.sizes(), want_s.sizes()) << what;
  EXPECT_LT(test::max_rel_diff(host(slots), want), tol) << "slots " << what;
  EXPECT_LT(test::max_rel_diff(host(shared), want_s), tol) << "shared " << what;
  if (!grad) return;
  ((slots * probe.to(device, dtype)).sum() + (shared * probe_s.to(device, dtype)).sum()).backward();
  ((want * probe).sum() + (want_s * probe_s).sum()).backward();
  EXPECT_LT(test::max_rel_diff(host(qd.grad()), qr.grad()), tol) << "dq " << what;
  EXPECT_LT(test::max_rel_diff(host(qsd.grad()), qsr.grad()), tol) << "dq_shared " << what;
  EXPECT_LT(test::max_rel_diff(host(Kd.grad()), Kr.grad()), tol) << "dK " << what;
  EXPECT_LT(test::max_rel_diff(host(Vd.grad()), Vr.grad()), tol) << "dV " << what;
}

const SharedHeadLayout kLayouts[] = {SharedHeadLayout::automatic, SharedHeadLayout::one_call,
                                     SharedHeadLayout::two_calls};

TEST(GqeAttention, MatchesReferenceOnCpu) {
  at::manual_seed(51);
  for (const Case& c : cases())
    for (SharedHeadLayout layout : kLayouts) {
      check(c, layout, at::kCPU, at::kDouble, 1e-10, /*grad=*/true);
      check(c, layout, at::kCPU, at::kFloat, 1e-5, /*grad=*/true);
      check(c, layout, at::kCPU, at::kFloat, 1e-5, /*grad=*/false);  // chunks: merged by log-sum-exp
    }
}

TEST(GqeAttention, OneCallWhereItWastesLittleTwoForDecode) {
  EXPECT_EQ(kernels::cuda::choose_shared_head_layout(8, 1, 4096), SharedHeadLayout::one_call);  // paper shape
  EXPECT_EQ(kernels::cuda::choose_shared_head_layout(4, 2, 512), SharedHeadLayout::one_call);   // 1 of 10 wasted
  EXPECT_EQ(kernels::cuda::choose_shared_head_layout(1, 4, 512), SharedHeadLayout::two_calls);  // 3 of 8 wasted
  EXPECT_EQ(kernels::cuda::choose_shared_head_layout(8, 1, 1), SharedHeadLayout::two_calls);    // no cache copy
}

TEST(GqeAttention, RejectsShapesThatDoNotFit) {
  at::Tensor q = at::randn({1, 4, 4, 8}), qs = at::randn({1, 4, 1, 8}), K = at::randn({1, 4, 2, 8});
  at::Tensor km = K.mean(2, true);
  EXPECT_THROW(kernels::cuda::gqe_attention(q, q, K, K, km, km, 0), c10::Error);    // shared query of 4 heads
  EXPECT_THROW(kernels::cuda::gqe_attention(q, qs, K, K, K, K, 0), c10::Error);     // mean K/V of 2 heads
  EXPECT_THROW(kernels::cuda::gqe_attention(q.narrow(2, 0, 3), qs, K, K, km, km, 0), c10::Error);  // 3 over 2
}

TEST(GqeAttentionGpu, MatchesReferenceFp32AndBf16) {
  GQE_REQUIRE_GPU();
  at::manual_seed(52);
  for (const Case& c : cases())
    for (SharedHeadLayout layout : kLayouts) {
      check(c, layout, at::kCUDA, at::kFloat, 1e-5, true);
      check(c, layout, at::kCUDA, at::kBFloat16, 2e-2, true);
      check(c, layout, at::kCUDA, at::kBFloat16, 2e-2, false);
    }
}

}  // namespace
}  // namespace gqe
