#include <gtest/gtest.h>

#include <numeric>

#include "gqe/core/error.h"
#include "gqe/train/token_source.h"

namespace gqe {

namespace {
std::shared_ptr<const std::vector<int64_t>> ramp(int64_t n) {
  auto v = std::make_shared<std::vector<int64_t>>(size_t(n));
  std::iota(v->begin(), v->end(), 0);
  return v;
}
}  // namespace

TEST(TextTokenSource, TargetsAreNextTokensAndRanksPartitionTheGlobalBatch) {
  auto toks = ramp(1000);
  TextTokenSource single(toks, 8, 4, 7, 0, 1);
  TextTokenSource r0(toks, 8, 2, 7, 0, 2), r1(toks, 8, 2, 7, 1, 2);
  for (int s = 0; s < 5; ++s) {
    auto [x, y] = single.next();
    EXPECT_TRUE(at::equal(y, x + 1));  // a ramp: the next token is +1
    EXPECT_EQ(x.select(1, 0).remainder(8).sum().item<int64_t>(), 0);  // windows start at multiples of T
    auto [x0, y0] = r0.next();
    auto [x1, y1] = r1.next();
    EXPECT_TRUE(at::equal(at::cat({x0, x1}), x));
    EXPECT_TRUE(at::equal(at::cat({y0, y1}), y));
  }
}

TEST(TextTokenSource, RestoreContinuesExactlyAndEpochsReshuffle) {
  auto toks = ramp(200);  // 24 windows of 8 -> 6 steps of 4 per epoch
  TextTokenSource a(toks, 8, 4, 1);
  EXPECT_EQ(a.steps_per_epoch(), 6);
  std::vector<at::Tensor> seen;
  for (int s = 0; s < 14; ++s) seen.push_back(a.next().first);
  // Each epoch visits every window once.
  at::Tensor e0 = at::cat(std::vector<at::Tensor>(seen.begin(), seen.begin() + 6)).select(1, 0);
  EXPECT_TRUE(at::equal(std::get<0>(e0.sort()), at::arange(24, at::kLong) * 8));
  at::Tensor e1 = at::cat(std::vector<at::Tensor>(seen.begin() + 6, seen.begin() + 12)).select(1, 0);
  EXPECT_FALSE(at::equal(e0, e1));
  TextTokenSource b(toks, 8, 4, 1);
  b.restore({1, 2});
  EXPECT_TRUE(at::equal(b.next().first, seen[8]));
  EXPECT_THROW(b.restore({0, 6}), Error);
}

TEST(TextTokenSource, TooLittleDataIsAClearError) {
  try {
    TextTokenSource s(ramp(20), 8, 4, 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one global batch"), std::string::npos);
  }
}

}  // namespace gqe
