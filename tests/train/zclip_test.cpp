#include <gtest/gtest.h>

#include <cmath>

#include "gqe/train/trainer.h"
#include "gqe/train/zclip.h"

namespace gqe {

TEST(ZClip, WarmupThenNormalStepsAreNotClipped) {
  ZClip z;  // alpha 0.97, z 2.5, warm-up 25
  for (int i = 0; i < 25; ++i) {
    auto d = z.observe(1.0 + 0.1 * (i % 2));  // 1.0, 1.1, ...
    EXPECT_FALSE(d.clipped);
  }
  ASSERT_TRUE(z.initialized());
  // 13 of 1.0 and 12 of 1.1: mean 1.048, population variance 0.1^2 * (13*12)/25^2.
  EXPECT_NEAR(z.mean(), 1.048, 1e-12);
  EXPECT_NEAR(z.variance(), 0.01 * 13 * 12 / 625.0, 1e-12);
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(z.observe(1.0 + 0.1 * (i % 2)).clipped);
}

TEST(ZClip, SpikeIsClippedToTheAuthorsFormulaAndFeedsTheEma) {
  ZClip z;
  for (int i = 0; i < 60; ++i) z.observe(1.0 + 0.1 * (i % 2));
  const double mean = z.mean(), var = z.variance(), sd = std::sqrt(var);
  const double spike = 10.0;
  const double zscore = (spike - mean) / (sd + 1e-6);
  auto d = z.observe(spike);
  EXPECT_TRUE(d.clipped);
  EXPECT_NEAR(d.z, zscore, 1e-9);
  const double expect = mean + 2.5 * 2.5 * sd / zscore;
  EXPECT_NEAR(d.target, expect, 1e-12);
  EXPECT_LT(d.target, mean + 2.5 * sd);  // stronger than a plain threshold clip
  // The EMA saw the clipped norm, not the spike.
  const double m2 = 0.97 * mean + 0.03 * expect;
  EXPECT_NEAR(z.mean(), m2, 1e-12);
  EXPECT_NEAR(z.variance(), 0.97 * var + 0.03 * (expect - m2) * (expect - m2), 1e-12);
}

TEST(ZClip, AbsoluteCapAppliesOnTopAndDuringWarmup) {
  ZClipOptions o;
  o.max_norm = 0.5;
  ZClip z(o);
  auto d = z.observe(2.0);
  EXPECT_TRUE(d.clipped);
  EXPECT_DOUBLE_EQ(d.target, 0.5);
  o.enabled = false;
  ZClip off(o);
  EXPECT_DOUBLE_EQ(off.observe(0.3).target, 0.3);
}

TEST(ZClip, StateRoundTripsExactly) {
  ZClip a;
  for (int i = 0; i < 40; ++i) a.observe(std::sin(i) + 2.0);
  ZClip b;
  b.load_state(nlohmann::json::parse(a.state().dump()), "state");
  for (int i = 0; i < 10; ++i) {
    const double x = 1.5 + 3.0 * (i == 5);
    auto da = a.observe(x), db = b.observe(x);
    EXPECT_EQ(da.target, db.target);
  }
  EXPECT_EQ(a.mean(), b.mean());
  EXPECT_EQ(a.variance(), b.variance());
}

TEST(LossSpikes, DetectsASpikeButNotNoise) {
  LossSpikeDetector d(6.0);
  for (int i = 0; i < 60; ++i) EXPECT_FALSE(d.observe(3.0 + 0.01 * std::sin(i)));
  EXPECT_TRUE(d.observe(9.0));
  EXPECT_FALSE(d.observe(3.0));
}

}  // namespace gqe
