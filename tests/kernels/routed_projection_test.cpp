// The sparse routed query projection and the narrow projection against their reference twins
// (kernels/reference.h: dense projection, then the selected experts), outputs and gradients at odd sizes;
// plus the properties decoding relies on: a token's query does not depend on its bucket mates, and the
// one-token path gives the same bits as the whole-sequence path.
#include "gqe/kernels/routed_projection.h"

#include <gtest/gtest.h>

#include "gqe/kernels/reference.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(RoutedProjection, MatchesReference) {
  at::manual_seed(12);
  const int64_t B = 2, T = 13, d = 24, G = 3, M = 4, k = 2, dh = 8;
  at::Tensor x = at::randn({B, T, d}), W = at::randn({G * M * dh, d});
  at::Tensor selected = std::get<1>(at::randn({B, T, G, M}).sort(-1)).narrow(-1, 0, k).contiguous();
  at::Tensor got = kernels::routed_query_projection(x, W, selected, M, dh).view({B, T, G, k, dh});
  at::Tensor want = kernels::routed_query_projection_reference(x, W, selected, M, dh).view({B, T, G, k, dh});
  EXPECT_LT(test::max_rel_diff(got, want), 1e-6);
}

TEST(RoutedProjection, GradientsMatchReference) {
  at::manual_seed(13);
  const int64_t B = 2, T = 9, d = 37, G = 2, M = 3, k = 2, dh = 6;  // odd sizes: vector tails everywhere
  at::Tensor x = at::randn({B, T, d}).requires_grad_(), W = at::randn({G * M * dh, d}).requires_grad_();
  at::Tensor xr = x.detach().clone().requires_grad_(), Wr = W.detach().clone().requires_grad_();
  at::Tensor selected = std::get<1>(at::randn({B, T, G, M}).sort(-1)).narrow(-1, 0, k).contiguous();
  at::Tensor probe = at::randn({B, T, G, k, dh});
  (kernels::routed_query_projection(x, W, selected, M, dh).view({B, T, G, k, dh}) * probe).sum().backward();
  (kernels::routed_query_projection_reference(xr, Wr, selected, M, dh).view({B, T, G, k, dh}) * probe).sum().backward();
  EXPECT_LT(test::max_rel_diff(x.grad(), xr.grad()), 1e-5);
  EXPECT_LT(test::max_rel_diff(W.grad(), Wr.grad()), 1e-5);
}

TEST(RoutedProjection, GradientsMatchReferenceAcrossWorkItemsAndThreadCounts) {
  // Several token chunks and column panels of the backward's work split, d with a vector tail, one expert
  // never chosen; the gradients are the same bits for 1 and 2 threads (fixed summation order).
  at::manual_seed(17);
  const int64_t B = 3, T = 101, d = 139, G = 2, M = 3, k = 1, dh = 10;
  at::Tensor x = at::randn({B, T, d}), W = at::randn({G * M * dh, d}), probe = at::randn({B, T, G * k, dh});
  at::Tensor selected = at::randint(0, M - 1, {B, T, G, k}, at::kLong);  // expert M-1 gets no tokens
  auto grads = [&](bool reference) {
    at::Tensor xg = x.clone().requires_grad_(), Wg = W.clone().requires_grad_();
    at::Tensor q = reference ? kernels::routed_query_projection_reference(xg, Wg, selected, M, dh)
                             : kernels::routed_query_projection(xg, Wg, selected, M, dh);
    (q * probe).sum().backward();
    return std::make_pair(xg.grad(), Wg.grad());
  };
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  auto one = grads(false);
  at::set_num_threads(std::max(2, before));
  auto many = grads(false);
  at::set_num_threads(before);
  auto want = grads(true);
  EXPECT_LT(test::max_rel_diff(many.first, want.first), 1e-5);
  EXPECT_LT(test::max_rel_diff(many.second, want.second), 1e-5);
  EXPECT_TRUE(at::equal(one.first, many.first));
  EXPECT_TRUE(at::equal(one.second, many.second));
}

TEST(RoutedProjection, TokenResultDoesNotDependOnBucketMates) {
  // Rerouting one token changes bucket sizes; every other token's query must stay bitwise equal.
  at::manual_seed(14);
  const int64_t T = 50, d = 64, G = 2, M = 2, dh = 16;
  at::Tensor x = at::randn({1, T, d}), W = at::randn({G * M * dh, d});
  at::Tensor sel = at::randint(0, M, {1, T, G, 1}, at::kLong);
  at::Tensor sel2 = sel.clone();
  sel2[0][7][0][0] = 1 - sel[0][7][0][0].item<int64_t>();
  at::Tensor a = kernels::routed_query_projection(x, W, sel, M, dh), b = kernels::routed_query_projection(x, W, sel2, M, dh);
  EXPECT_TRUE(at::equal(a.narrow(1, 0, 7), b.narrow(1, 0, 7)));
  EXPECT_TRUE(at::equal(a.narrow(1, 8, T - 8), b.narrow(1, 8, T - 8)));
}

TEST(RoutedProjection, NarrowProjectionMatchesReference) {
  at::manual_seed(16);
  for (int64_t T : {1, 5, 77}) {
    at::Tensor x = at::randn({2, T, 37}).requires_grad_(), W = at::randn({6, 37}).requires_grad_();
    at::Tensor xr = x.detach().clone().requires_grad_(), Wr = W.detach().clone().requires_grad_();
    at::Tensor probe = at::randn({2, T, 1, 6});
    at::Tensor got = kernels::narrow_projection(x, W), want = kernels::narrow_projection_reference(xr, Wr);
    EXPECT_LT(test::max_rel_diff(got, want), 1e-6) << "T=" << T;
    (got * probe).sum().backward();
    (want * probe).sum().backward();
    EXPECT_LT(test::max_rel_diff(x.grad(), xr.grad()), 1e-5) << "T=" << T;
    EXPECT_LT(test::max_rel_diff(W.grad(), Wr.grad()), 1e-5) << "T=" << T;
  }
}

// The standalone backward functions (the Python package's ops call them) give the autograd function's bits.
TEST(RoutedProjection, StandaloneBackwardEqualsTheAutogradBackward) {
  at::manual_seed(17);
  const int64_t B = 2, T = 11, d = 37, G = 2, M = 3, k = 2, dh = 6;
  at::Tensor x = at::randn({B, T, d}).requires_grad_(), W = at::randn({G * M * dh, d}).requires_grad_();
  at::Tensor selected = std::get<1>(at::randn({B, T, G, M}).sort(-1)).narrow(-1, 0, k).contiguous();
  at::Tensor probe = at::randn({B, T, G * k, dh});
  (kernels::routed_query_projection(x, W, selected, M, dh) * probe).sum().backward();
  auto [dx, dw] = kernels::routed_query_projection_backward(x.detach(), W.detach(), selected, M, dh, probe);
  EXPECT_TRUE(at::equal(dx, x.grad()));
  EXPECT_TRUE(at::equal(dw, W.grad()));

  at::Tensor xn = at::randn({B, T, d}).requires_grad_(), Wn = at::randn({dh, d}).requires_grad_();
  at::Tensor probe_n = at::randn({B, T, 1, dh});
  (kernels::narrow_projection(xn, Wn) * probe_n).sum().backward();
  auto [dxn, dwn] = kernels::narrow_projection_backward(xn.detach(), Wn.detach(), probe_n);
  EXPECT_TRUE(at::equal(dxn, xn.grad()));
  EXPECT_TRUE(at::equal(dwn, Wn.grad()));
  EXPECT_THROW(kernels::routed_query_projection_backward(x.detach(), W.detach(), selected, M, dh, probe.narrow(1, 0, 3)),
               c10::Error);
}

TEST(RoutedProjection, ManyAndFewEntriesGiveTheSameBits) {
  // A whole sequence takes the packed-weight path, a single token or a short chunk the transposed-x path
  // (decode): both must produce bit-identical queries, or decoding would drift from prefill. Odd d
  // exercises the tails.
  at::manual_seed(15);
  for (int64_t dh : {16, 6, 64}) {
    const int64_t T = 70, d = 37, G = 2, M = 3;
    at::Tensor x = at::randn({1, T, d}), W = at::randn({G * M * dh, d});
    at::Tensor sel = at::randint(0, M, {1, T, G, 1}, at::kLong);
    at::Tensor all = kernels::routed_query_projection(x, W, sel, M, dh);
    for (int64_t t : {0, 33, 69}) {
      at::Tensor one = kernels::routed_query_projection(x.narrow(1, t, 1), W, sel.narrow(1, t, 1), M, dh);
      EXPECT_TRUE(at::equal(one, all.narrow(1, t, 1))) << "d_h=" << dh << " t=" << t;
    }
    if (dh == 64) {  // 40 entries of a 384-row weight: few enough for the transposed path
      at::Tensor chunk = kernels::routed_query_projection(x.narrow(1, 10, 20), W, sel.narrow(1, 10, 20), M, dh);
      EXPECT_TRUE(at::equal(chunk, all.narrow(1, 10, 20)));
    }
  }
}

}  // namespace
}  // namespace gqe
