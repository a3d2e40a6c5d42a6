// LayerKVCache: appends across several capacity doublings keep every position, views have the right
// shape, truncate rewinds, and the cached mean K/V equals the mean recomputed from all cached keys.
#include <gtest/gtest.h>

#include "gqe/attention/kv_cache.h"

namespace gqe {
namespace {

TEST(KVCache, AppendsAcrossGrowthKeepEveryPosition) {
  at::manual_seed(5);
  const int64_t B = 2, G = 3, dh = 4;
  LayerKVCache cache;
  EXPECT_EQ(cache.length(), 0);
  std::vector<at::Tensor> ks, vs;
  for (int64_t T : {5, 1, 1, 17, 1, 40}) {  // crosses the 16 -> 32 -> 64 doublings
    ks.push_back(at::randn({B, T, G, dh})), vs.push_back(at::randn({B, T, G, dh}));
    auto [k, v] = cache.append(ks.back(), vs.back());
    ASSERT_EQ(k.sizes(), at::IntArrayRef({B, cache.length(), G, dh}));
    EXPECT_TRUE(at::equal(k, at::cat(ks, 1)));
    EXPECT_TRUE(at::equal(v, at::cat(vs, 1)));
  }
  EXPECT_EQ(cache.length(), 65);
}

TEST(KVCache, MeanOverHeadsIsCachedIncrementallyAndFollowsTruncate) {
  at::manual_seed(6);
  LayerKVCache cache;
  cache.append(at::randn({1, 7, 4, 8}), at::randn({1, 7, 4, 8}));
  auto check = [&] {
    auto [km, vm] = cache.mean_kv();
    EXPECT_TRUE(at::allclose(km, cache.keys().mean(2, true), 0, 1e-6));
    EXPECT_TRUE(at::allclose(vm, cache.values().mean(2, true), 0, 1e-6));
    EXPECT_EQ(km.size(1), cache.length());
  };
  check();
  for (int i = 0; i < 20; ++i) cache.append(at::randn({1, 1, 4, 8}), at::randn({1, 1, 4, 8})), check();
  cache.truncate(10);
  EXPECT_EQ(cache.length(), 10);
  check();
  cache.append(at::randn({1, 3, 4, 8}), at::randn({1, 3, 4, 8}));  // overwrites positions 10..12
  check();
}

}  // namespace
}  // namespace gqe
