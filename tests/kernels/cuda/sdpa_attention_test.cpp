// The SDPA attention of the CUDA path against its reference twin (flash_attention_reference), outputs and
// gradients: prefill, decode, chunked prefill against a longer cache (with gradients: one masked call;
// without: two calls merged by log-sum-exp), G = 1, G = H, odd lengths and head dims; the ragged decode
// against gqe_decode_reference. On the CPU in every CUDA build (the same libtorch ops); on a GPU in fp32 and
// bf16.
#include "gqe/kernels/cuda/sdpa_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <sstream>

#include "cuda_test_util.h"
#include "gqe/kernels/reference.h"
#include "test_util.h"

namespace gqe {
namespace {

struct Case {
  int64_t B, Tq, Tk, q_start, Hq, G, dh;
};

std::vector<Case> cases() {
  return {
      {2, 37, 37, 0, 4, 2, 16},     // prefill, odd length
      {1, 130, 130, 0, 8, 1, 32},   // G = 1
      {1, 65, 65, 0, 4, 4, 8},      // G = H
      {2, 1, 77, 76, 4, 2, 16},     // decode at the end of a cache
      {1, 50, 150, 100, 6, 3, 24},  // chunked prefill
      {1, 10, 40, 5, 2, 1, 8},      // keys after the last query: invisible, zero gradient
      {1, 33, 33, 0, 3, 1, 5},      // odd head dim
  };
}

std::string describe(const Case& c) {
  std::ostringstream o;
  o << "B=" << c.B << " Tq=" << c.Tq << " Tk=" << c.Tk << " q_start=" << c.q_start << " Hq=" << c.Hq << " G=" << c.G
    << " dh=" << c.dh;
  return o.str();
}

// Runs sdpa_attention on `device` in `dtype` and the reference on the CPU in float64; compares outputs and
// the gradients of (out * probe).sum() relative to the largest reference entry.
void check_without_grad(const Case& c, at::Device device, at::ScalarType dtype, double tol) {
  at::Tensor q = at::randn({c.B, c.Tq, c.Hq, c.dh}, at::kDouble), k = at::randn({c.B, c.Tk, c.G, c.dh}, at::kDouble),
             v = at::randn({c.B, c.Tk, c.G, c.dh}, at::kDouble);
  at::Tensor out = kernels::cuda::sdpa_attention(q.to(device, dtype), k.to(device, dtype), v.to(device, dtype), c.q_start);
  at::Tensor ref = kernels::flash_attention_reference(q, k, v, c.q_start);
  EXPECT_LT(test::max_rel_diff(out.to(at::kCPU, at::kDouble), ref), tol) << "out (no grad) " << describe(c);
}

void check(const Case& c, at::Device device, at::ScalarType dtype, double tol) {
  at::Tensor q = at::randn({c.B, c.Tq, c.Hq, c.dh}, at::kDouble), k = at::randn({c.B, c.Tk, c.G, c.dh}, at::kDouble),
             v = at::randn({c.B, c.Tk, c.G, c.dh}, at::kDouble), probe = at::randn({c.B, c.Tq, c.Hq, c.dh}, at::kDouble);
  // Fresh leaves: .to() returns the tensor itself when device and dtype already match.
  auto leaf = [&](const at::Tensor& t) { return t.to(device, dtype).clone().requires_grad_(); };
  at::Tensor qd = leaf(q), kd = leaf(k), vd = leaf(v);
  at::Tensor out = kernels::cuda::sdpa_attention(qd, kd, vd, c.q_start);
  (out * probe.to(device, dtype)).sum().backward();
  at::Tensor qr = q.clone().requires_grad_(), kr = k.clone().requires_grad_(), vr = v.clone().requires_grad_();
  at::Tensor ref = kernels::flash_attention_reference(qr, kr, vr, c.q_start);
  (ref * probe).sum().backward();
  auto host = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble); };
  EXPECT_LT(test::max_rel_diff(host(out), ref), tol) << "out " << describe(c);
  EXPECT_LT(test::max_rel_diff(host(qd.grad()), qr.grad()), tol) << "dq " << describe(c);
  EXPECT_LT(test::max_rel_diff(host(kd.grad()), kr.grad()), tol) << "dk " << describe(c);
  EXPECT_LT(test::max_rel_diff(host(vd.grad()), vr.grad()), tol) << "dv " << describe(c);
}

TEST(SdpaAttention, MatchesReferenceOnCpu) {
  at::manual_seed(31);
  for (const Case& c : cases()) {
    check(c, at::kCPU, at::kDouble, 1e-10);
    check(c, at::kCPU, at::kFloat, 1e-5);
    check_without_grad(c, at::kCPU, at::kDouble, 1e-6);  // the log-sum-exps are fp32
    check_without_grad(c, at::kCPU, at::kFloat, 1e-5);
  }
}

TEST(SdpaAttention, ChunksWithoutGradientAreMergedByLogSumExp) {
  at::Tensor q = at::randn({1, 8, 4, 16}), k = at::randn({1, 20, 2, 16});
  EXPECT_TRUE(kernels::cuda::chunk_by_lse_merge(q, k, k));
  EXPECT_FALSE(kernels::cuda::chunk_by_lse_merge(q.requires_grad_(), k, k));
  EXPECT_EQ(kernels::cuda::sdpa_backend(q.detach(), k, k, 12), "cpu flash x2 (merged by log-sum-exp)");
  EXPECT_NE(kernels::cuda::sdpa_backend(q.detach(), k.narrow(1, 0, 8), k.narrow(1, 0, 8), 0).rfind("none", 0), 0u);
}

TEST(SdpaAttention, MergeByLogSumExpEqualsAttentionOverAllKeys) {
  at::manual_seed(33);
  at::Tensor q = at::randn({2, 3, 5, 8}, at::kDouble), k = at::randn({2, 3, 11, 8}, at::kDouble),
             v = at::randn({2, 3, 11, 8}, at::kDouble);
  auto part = [&](int64_t from, int64_t n) {
    at::Tensor s = at::matmul(q, k.narrow(2, from, n).transpose(-1, -2)) / std::sqrt(8.0);
    return std::make_pair(at::matmul(at::softmax(s, -1), v.narrow(2, from, n)), at::logsumexp(s, -1));
  };
  auto [o1, l1] = part(0, 4);
  auto [o2, l2] = part(4, 7);
  at::Tensor want = at::matmul(at::softmax(at::matmul(q, k.transpose(-1, -2)) / std::sqrt(8.0), -1), v);
  EXPECT_LT(test::max_rel_diff(kernels::cuda::merge_by_lse(o1, l1, o2, l2), want), 1e-12);
}

// sdpa_decode_ragged: sequence b sees only its first lengths[b] keys (the rest is another sequence's padding).
void check_ragged(at::Device device, at::ScalarType dtype, double tol) {
  const int64_t B = 3, Tk = 19, Hq = 6, G = 2, dh = 8;
  at::Tensor q = at::randn({B, 1, Hq, dh}, at::kDouble), k = at::randn({B, Tk, G, dh}, at::kDouble),
             v = at::randn({B, Tk, G, dh}, at::kDouble);
  at::Tensor lengths = at::tensor(std::vector<int64_t>{19, 1, 11}, at::kLong);
  at::Tensor got = kernels::cuda::sdpa_decode_ragged(q.to(device, dtype), k.to(device, dtype), v.to(device, dtype),
                                                     lengths.to(device));
  at::Tensor want = kernels::gqe_decode_reference(q, at::Tensor(), k, v, lengths).slots;
  EXPECT_LT(test::max_rel_diff(got.to(at::kCPU, at::kDouble), want), tol);
}

TEST(SdpaAttention, RaggedDecodeMatchesReferenceOnCpu) {
  at::manual_seed(34);
  check_ragged(at::kCPU, at::kDouble, 1e-10);
  check_ragged(at::kCPU, at::kFloat, 1e-5);
}

TEST(SdpaAttention, RejectsMismatchedShapes) {
  at::Tensor q = at::randn({1, 4, 3, 8}), k = at::randn({1, 4, 2, 8});
  EXPECT_THROW(kernels::cuda::sdpa_attention(q, k, k, 0), c10::Error);  // 3 heads over 2 KV heads
  at::Tensor q2 = at::randn({1, 4, 4, 8});
  EXPECT_THROW(kernels::cuda::sdpa_attention(q2, k, k, 1), c10::Error);  // queries past the last key
}

TEST(SdpaAttentionGpu, MatchesReferenceFp32AndBf16) {
  GQE_REQUIRE_GPU();
  at::manual_seed(32);
  for (const Case& c : cases()) {
    check(c, at::kCUDA, at::kFloat, 1e-5);
    check(c, at::kCUDA, at::kBFloat16, 2e-2);
    check_without_grad(c, at::kCUDA, at::kFloat, 1e-5);
    check_without_grad(c, at::kCUDA, at::kBFloat16, 2e-2);
    std::cout << "[ backend ] " << describe(c) << ": "
              << kernels::cuda::sdpa_backend(at::randn({c.B, c.Tq, c.Hq, c.dh}, at::TensorOptions(at::kCUDA).dtype(at::kBFloat16)),
                                             at::randn({c.B, c.Tk, c.G, c.dh}, at::TensorOptions(at::kCUDA).dtype(at::kBFloat16)),
                                             at::randn({c.B, c.Tk, c.G, c.dh}, at::TensorOptions(at::kCUDA).dtype(at::kBFloat16)),
                                             c.q_start)
              << "\n";
  }
  check_ragged(at::kCUDA, at::kFloat, 1e-5);
  check_ragged(at::kCUDA, at::kBFloat16, 2e-2);
}

}  // namespace
}  // namespace gqe
