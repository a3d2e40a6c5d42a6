// The one dispatch point: which attention path a block's input gets.
#include "gqe/attention/attention_path.h"

#include <gtest/gtest.h>

#include "gqe/kernels/gqe_decode.h"
#include "gqe/kernels/reference.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(AttentionPath, ChosenFromDeviceDtypeAndConfig) {
  AttentionConfig a;
  EXPECT_STREQ(attention_path_for(a, at::zeros({1})).name(), "cpu");
  EXPECT_STREQ(attention_path_for(a, at::zeros({1}, at::kDouble)).name(), "reference");    // gradient checks
  EXPECT_STREQ(attention_path_for(a, at::zeros({1}, at::kBFloat16)).name(), "reference");  // no bf16 CPU kernels
  a.implementation = AttentionImplementation::reference;
  EXPECT_STREQ(attention_path_for(a, at::zeros({1})).name(), "reference");
}

TEST(AttentionPath, CpuKernelsRefuseOtherDtypesWithTheirName) {
  const AttentionPath& cpu = cpu_attention_path();
  at::Tensor q = at::randn({1, 3, 2, 4}, at::kDouble);
  try {
    cpu.attend(q, q, q, 0);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("flash_attention"), std::string::npos) << e.what();
  }
}

TEST(AttentionPath, CpuPathDecodesGqeWithTheFusedKernelWithoutMeanKV) {
  // The cache's running mean is of other keys than the ones passed: a path that read it would be wrong.
  // The CPU path's decode step (one position, no gradient) serves the shared head from the K/V tiles.
  at::manual_seed(1);
  const int64_t B = 2, L = 70, G = 4, dh = 12;
  LayerKVCache cache;
  cache.append(at::randn({B, L, G, dh}), at::randn({B, L, G, dh}));
  cache.mean_kv();
  at::Tensor k = at::randn({B, L, G, dh}), v = at::randn({B, L, G, dh});
  at::Tensor q = at::randn({B, 1, 2 * G, dh}), qs = at::randn({B, 1, 1, dh});
  torch::NoGradGuard no_grad;
  auto [o, s] = cpu_attention_path().attend_slots_and_shared(q, qs, k, v, L - 1, &cache);
  kernels::GqeDecodeOutput want = kernels::gqe_decode_reference(q, qs, k, v);
  EXPECT_LT(test::max_rel_diff(o, want.slots), 1e-5);
  EXPECT_LT(test::max_rel_diff(s, want.shared), 1e-5);
  // Without a shared query: the slot heads only.
  auto [o2, s2] = cpu_attention_path().attend_slots_and_shared(q, at::Tensor(), k, v, L - 1, &cache);
  EXPECT_FALSE(s2.defined());
  EXPECT_TRUE(at::equal(o2, o));
}

// One token without gradient takes the row-block kernel for its selected experts (kernels/gemv.h): the same
// queries as the reference projection, several groups and choices per group.
TEST(AttentionPath, CpuPathOneTokenRoutedQueriesMatchTheReference) {
  at::manual_seed(21);
  const int64_t d = 40, G = 3, M = 4, k = 2, dh = 8;
  at::NoGradGuard no_grad;
  at::Tensor x = at::randn({1, 1, d}), w = at::randn({G * M * dh, d});
  at::Tensor selected = at::tensor(std::vector<int64_t>{3, 0, 1, 2, 0, 3}, at::kLong).view({1, 1, G, k});
  at::Tensor got = cpu_attention_path().routed_queries(x, w, selected, M, dh);
  at::Tensor want = kernels::routed_query_projection_reference(x, w, selected, M, dh);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LT(test::max_rel_diff(got, want), 1e-5);
}

TEST(AttentionPath, CpuPathDecodesGqaWithTheSameFusedKernel) {
  // GQA's decode step goes through the kernel GQE's does (no shared query), so a decode comparison of the
  // two measures the method, not two kernels; prefill positions still take flash attention.
  at::manual_seed(3);
  const int64_t B = 3, L = 300, G = 2, dh = 20;
  at::Tensor k = at::randn({B, L, G, dh}), v = at::randn({B, L, G, dh}), q = at::randn({B, 1, 4 * G, dh});
  torch::NoGradGuard no_grad;
  at::Tensor o = cpu_attention_path().attend(q, k, v, L - 1);
  EXPECT_TRUE(at::equal(o, kernels::gqe_decode(q, at::Tensor(), k, v).slots));
  EXPECT_LT(test::max_rel_diff(o, kernels::flash_attention_reference(q, k, v, L - 1)), 1e-5);
  // A query that is not at the last key (a chunk of a longer prefill) is not a decode step.
  at::Tensor mid = cpu_attention_path().attend(q, k, v, L - 10);
  EXPECT_LT(test::max_rel_diff(mid, kernels::flash_attention_reference(q, k, v, L - 10)), 1e-5);
}

TEST(AttentionPath, CpuPathKeepsGradientsForAOneTokenForwardUnderAutograd) {
  // One position with grad-requiring inputs (e.g. a one-token training forward) takes the differentiable
  // kernels, not the forward-only decode kernel.
  at::manual_seed(2);
  at::Tensor k = at::randn({1, 5, 2, 8}), v = at::randn({1, 5, 2, 8});
  at::Tensor q = at::randn({1, 1, 2, 8}).requires_grad_(), qs = at::randn({1, 1, 1, 8}).requires_grad_();
  auto [o, s] = cpu_attention_path().attend_slots_and_shared(q, qs, k, v, 4, nullptr);
  (o.sum() + s.sum()).backward();
  ASSERT_TRUE(q.grad().defined() && qs.grad().defined());
  EXPECT_GT(q.grad().abs().max().item<double>(), 0.0);
  kernels::GqeDecodeOutput want = kernels::gqe_decode_reference(q.detach(), qs.detach(), k, v);
  EXPECT_LT(test::max_rel_diff(o.detach(), want.slots), 1e-5);
  EXPECT_LT(test::max_rel_diff(s.detach(), want.shared), 1e-5);
}

}  // namespace
}  // namespace gqe
