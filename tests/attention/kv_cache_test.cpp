// LayerKVCache: appends across several capacity doublings keep every position, views have the right
// shape, truncate rewinds, the cached mean K/V equals the mean recomputed from all cached keys, and a ragged
// batch appends each sequence at its own length.
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

TEST(KVCache, RaggedAppendWritesEachSequenceAtItsOwnLength) {
  // A right-padded prefill of 3 sequences of lengths 4, 1 and 6, then appends of one position each: each
  // sequence's new K/V lands right after its own positions (over its padding), the rest stays, the cache
  // grows past its capacity, and the cached mean follows the overwritten positions.
  at::manual_seed(7);
  const int64_t G = 2, dh = 4;
  LayerKVCache cache;
  at::Tensor k0 = at::randn({3, 6, G, dh}), v0 = at::randn({3, 6, G, dh});
  cache.append(k0, v0);
  cache.mean_kv();
  EXPECT_FALSE(cache.ragged());
  cache.set_lengths({4, 1, 6});
  ASSERT_TRUE(cache.ragged());
  at::Tensor want_k = at::zeros({3, 40, G, dh}), want_v = at::zeros({3, 40, G, dh});
  want_k.narrow(1, 0, 6).copy_(k0), want_v.narrow(1, 0, 6).copy_(v0);
  std::vector<int64_t> len = {4, 1, 6};
  for (int step = 0; step < 30; ++step) {
    at::Tensor k = at::randn({3, 1, G, dh}), v = at::randn({3, 1, G, dh});
    cache.append(k, v);
    for (int64_t b = 0; b < 3; ++b) {
      want_k[b][len[size_t(b)]].copy_(k[b][0]), want_v[b][len[size_t(b)]].copy_(v[b][0]);
      ++len[size_t(b)];
    }
    EXPECT_EQ(cache.lengths(), len);
    EXPECT_EQ(cache.length(), 6 + step + 1);  // the longest sequence's length
    auto [km, vm] = cache.mean_kv();
    for (int64_t b = 0; b < 3; ++b) {  // past a sequence's length: padding, not compared
      const int64_t n = len[size_t(b)];
      EXPECT_TRUE(at::equal(cache.keys()[b].narrow(0, 0, n), want_k[b].narrow(0, 0, n))) << "sequence " << b;
      EXPECT_TRUE(at::equal(cache.values()[b].narrow(0, 0, n), want_v[b].narrow(0, 0, n))) << "sequence " << b;
      EXPECT_TRUE(at::allclose(km[b].narrow(0, 0, n), want_k[b].narrow(0, 0, n).mean(1, true), 0, 1e-6));
    }
  }
  EXPECT_TRUE(at::equal(cache.lengths_tensor(), at::tensor(at::ArrayRef<int64_t>(len), at::kLong)));
  // Several positions per sequence, each sequence's from its own length on.
  at::Tensor k = at::randn({3, 5, G, dh}), v = at::randn({3, 5, G, dh});
  cache.append(k, v);
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_TRUE(at::equal(cache.keys()[b].narrow(0, len[size_t(b)], 5), k[b])) << "sequence " << b;
    EXPECT_TRUE(at::equal(cache.values()[b].narrow(0, len[size_t(b)], 5), v[b])) << "sequence " << b;
    EXPECT_TRUE(at::equal(cache.keys()[b].narrow(0, 0, len[size_t(b)]), want_k[b].narrow(0, 0, len[size_t(b)])));
    len[size_t(b)] += 5;
  }
  EXPECT_EQ(cache.lengths(), len);
  EXPECT_EQ(cache.length(), 6 + 30 + 5);
  auto [km, vm] = cache.mean_kv();
  EXPECT_TRUE(at::allclose(km[0].narrow(0, 0, len[0]), cache.keys()[0].narrow(0, 0, len[0]).mean(1, true), 0, 1e-6));
  EXPECT_THROW(cache.append(at::randn({2, 1, G, dh}), at::randn({2, 1, G, dh})), c10::Error);  // one per sequence
  EXPECT_THROW(cache.set_lengths({1, 2}), c10::Error);                                         // one per sequence
  EXPECT_THROW(cache.set_lengths({1, 2, 99}), c10::Error);                                     // past the cache
}

}  // namespace
}  // namespace gqe
