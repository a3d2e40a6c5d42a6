#include "gqe/data/loader.h"

#include <gtest/gtest.h>

#include <set>

#include "data_test_util.h"
#include "test_util.h"
#include "gqe/core/error.h"

namespace gqe {
namespace {

using test::scratch_dir;

// Shards whose token at global position p is p % 60000, so every window can be traced back to where it came
// from. Sizes are uneven on purpose (windows do not divide them exactly).
std::vector<std::string> make_shards(const std::string& dir) {
  std::vector<std::string> paths;
  int64_t pos = 0;
  int i = 0;
  for (int64_t n : {1000, 37, 2501, 1}) {
    std::vector<int64_t> t(static_cast<size_t>(n));
    for (auto& v : t) v = pos++ % 60000;
    paths.push_back(dir + "/s" + std::to_string(i++) + ".tok");
    write_token_shard(paths.back(), t, TokenDtype::kUInt16, 60000);
  }
  std::vector<int64_t> t(3000);
  for (auto& v : t) v = pos++ % 60000;
  paths.push_back(dir + "/l.bin");
  write_llmc_shard(paths.back(), t);
  return paths;
}

TEST(IndexPermutation, IsABijectionForManySizes) {
  for (uint64_t n : {1, 2, 3, 4, 5, 17, 64, 1000, 4097}) {
    for (uint64_t key : {0ull, 1ull, 0xdeadbeefull}) {
      IndexPermutation p(n, key);
      std::set<uint64_t> seen;
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t v = p(i);
        ASSERT_LT(v, n);
        seen.insert(v);
      }
      EXPECT_EQ(seen.size(), n) << "n=" << n << " key=" << key;
    }
  }
  // It actually shuffles, and different keys give different orders.
  IndexPermutation a(1000, 1), b(1000, 2);
  int fixed = 0, same = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    fixed += a(i) == i;
    same += a(i) == b(i);
  }
  EXPECT_LT(fixed, 20);
  EXPECT_LT(same, 20);
}

TEST(TokenLoader, WindowsAreNextTokenPairsAndCoverAnEpochOnce) {
  const std::string dir = scratch_dir("data/loader-cover");
  const auto shards = make_shards(dir);
  const int64_t T = 16, B = 4;
  TokenLoader L(shards, T, B, 7);
  EXPECT_EQ(L.total_tokens(), 1000 + 37 + 2501 + 1 + 3000);
  const int64_t W = 999 / 16 + 36 / 16 + 2500 / 16 + 0 + 2999 / 16;
  EXPECT_EQ(L.num_windows(), W);
  EXPECT_EQ(L.steps_per_epoch(), W / B);
  EXPECT_EQ(L.vocab_size(), 60000u);
  std::set<int64_t> starts;
  for (int64_t s = 0; s < L.steps_per_epoch(); ++s) {
    auto [x, y] = L.next();
    ASSERT_EQ(x.sizes(), (at::IntArrayRef{B, T}));
    ASSERT_EQ(y.sizes(), (at::IntArrayRef{B, T}));
    ASSERT_EQ(x.scalar_type(), at::kLong);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t first = x[b][0].item<int64_t>();
      // Tokens are consecutive positions and targets are inputs shifted by one.
      EXPECT_TRUE(at::equal(x[b], at::arange(first, first + T, at::kLong))) << first;
      EXPECT_TRUE(at::equal(y[b], at::arange(first + 1, first + T + 1, at::kLong))) << first;
      starts.insert(first);
    }
  }
  EXPECT_EQ(static_cast<int64_t>(starts.size()), L.steps_per_epoch() * B) << "a window repeated within an epoch";
  EXPECT_EQ(L.state().epoch, 1u);
  EXPECT_EQ(L.state().step, 0u);
  // No window straddles the shard boundaries (positions 1000, 1037, 3538, 3539).
  for (int64_t s : starts)
    for (int64_t boundary : {1000, 1037, 3538, 3539}) EXPECT_FALSE(s < boundary && s + T >= boundary) << s;
}

TEST(TokenLoader, TokenLimitKeepsWindowsInsideThePrefix) {
  const std::string dir = scratch_dir("data/loader-limit");
  const auto shards = make_shards(dir);
  const int64_t T = 16, B = 2;
  TokenLoader L(shards, T, B, 3);
  // 1500 tokens: all of the first shard (1000), the second (37) and 463 of the third.
  L.limit_tokens(1500);
  EXPECT_EQ(L.total_tokens(), 1500);
  const int64_t W = 999 / 16 + 36 / 16 + 462 / 16;
  EXPECT_EQ(L.num_windows(), W);
  EXPECT_EQ(L.steps_per_epoch(), W / B);
  for (int64_t s = 0; s < 3 * L.steps_per_epoch(); ++s) {  // three epochs: the same prefix again and again
    auto [x, y] = L.next();
    for (int64_t b = 0; b < B; ++b) EXPECT_LE(y[b][T - 1].item<int64_t>(), 1499) << "a target past the limit";
  }
  // A limit beyond the data is the whole data; one with less than a batch of windows is an error naming it.
  TokenLoader all(shards, T, B, 3);
  all.limit_tokens(1 << 30);
  EXPECT_EQ(all.num_windows(), TokenLoader(shards, T, B, 3).num_windows());
  try {
    TokenLoader(shards, T, B, 3).limit_tokens(20);  // one window, fewer than a batch of 2
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the first 20 tokens"), std::string::npos) << e.what();
  }
}

TEST(TokenLoader, OrderDependsOnlyOnSeedAndEpoch) {
  const std::string dir = scratch_dir("data/loader-det");
  const auto shards = make_shards(dir);
  TokenLoader a(shards, 8, 3, 42), b(shards, 8, 3, 42), c(shards, 8, 3, 43);
  bool differs = false;
  for (int i = 0; i < 400; ++i) {  // crosses an epoch boundary
    auto [xa, ya] = a.next();
    auto [xb, yb] = b.next();
    auto [xc, yc] = c.next();
    ASSERT_TRUE(at::equal(xa, xb) && at::equal(ya, yb)) << "step " << i;
    differs |= !at::equal(xa, xc);
  }
  EXPECT_TRUE(differs) << "seed has no effect";
  EXPECT_GE(a.state().epoch, 1u);
  // Epochs differ in order.
  int same = 0;
  for (uint64_t p = 0; p < 100; ++p) same += a.window_at(0, p) == a.window_at(1, p);
  EXPECT_LT(same, 10);
}

TEST(TokenLoader, RankSlicesUnionEqualsSingleProcessBatch) {
  const std::string dir = scratch_dir("data/loader-ranks");
  const auto shards = make_shards(dir);
  const int64_t T = 8, B = 3;
  for (int world : {2, 3}) {
    TokenLoader single(shards, T, B * world, 5);
    std::vector<std::unique_ptr<TokenLoader>> ranks;
    for (int r = 0; r < world; ++r) ranks.push_back(std::make_unique<TokenLoader>(shards, T, B, 5, r, world));
    ASSERT_EQ(ranks[0]->steps_per_epoch(), single.steps_per_epoch());
    for (int s = 0; s < single.steps_per_epoch() + 3; ++s) {  // into the second epoch
      auto [x, y] = single.next();
      std::vector<at::Tensor> xs, ys;
      for (auto& r : ranks) {
        auto [xr, yr] = r->next();
        xs.push_back(xr);
        ys.push_back(yr);
      }
      ASSERT_TRUE(at::equal(at::cat(xs, 0), x)) << "world " << world << " step " << s;
      ASSERT_TRUE(at::equal(at::cat(ys, 0), y)) << "world " << world << " step " << s;
      // Disjoint: no window is read by two ranks.
      std::set<int64_t> firsts;
      for (const auto& xr : xs)
        for (int64_t b = 0; b < B; ++b) firsts.insert(xr[b][0].item<int64_t>());
      EXPECT_EQ(static_cast<int64_t>(firsts.size()), B * world);
    }
  }
}

TEST(TokenLoader, StateRestoreGivesTheSameFollowingBatches) {
  const std::string dir = scratch_dir("data/loader-resume");
  const auto shards = make_shards(dir);
  TokenLoader a(shards, 8, 4, 9, 1, 2);
  for (int i = 0; i < 150; ++i) a.next();  // past the first epoch (steps_per_epoch is < 150)
  const LoaderState saved = a.state();
  EXPECT_GE(saved.epoch, 1u);
  std::vector<at::Tensor> expect;
  for (int i = 0; i < 20; ++i) expect.push_back(a.next().first);
  TokenLoader b(shards, 8, 4, 9, 1, 2);
  b.restore(saved);
  EXPECT_EQ(b.state().epoch, saved.epoch);
  EXPECT_EQ(b.state().step, saved.step);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(at::equal(b.next().first, expect[i])) << i;
  EXPECT_THROW(b.restore({0, static_cast<uint64_t>(b.steps_per_epoch())}), Error);
}

TEST(TokenLoader, RejectsBadArguments) {
  const std::string dir = scratch_dir("data/loader-bad");
  const auto shards = make_shards(dir);
  EXPECT_THROW(TokenLoader({}, 8, 1, 0), Error);
  EXPECT_THROW(TokenLoader(shards, 0, 1, 0), Error);
  EXPECT_THROW(TokenLoader(shards, 8, 0, 0), Error);
  EXPECT_THROW(TokenLoader(shards, 8, 1, 0, 2, 2), Error);
  EXPECT_THROW(TokenLoader(shards, 4000, 1, 0), Error);   // no window fits: fewer than one batch
  EXPECT_THROW(TokenLoader({dir + "/nope.tok"}, 8, 1, 0), Error);
}

}  // namespace
}  // namespace gqe
