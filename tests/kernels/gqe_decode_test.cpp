// GQE's fused decode kernel against its reference twin (gqe_decode_reference: slot heads by the reference
// attention, the shared head against the explicitly formed mean K/V, in double), on fresh random inputs:
// cache lengths 1, 7 and past one work chunk, head dims that are not a multiple of the vector width,
// G = 1 .. 8 and k = 1 .. 3 slot heads per group, with and without the shared head; unequal lengths in
// one batch; K/V read in place from a cache view; results independent of the thread count; refusals.
#include "gqe/kernels/gqe_decode.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <limits>
#include <sstream>

#include "gqe/kernels/bf16_avx512.h"
#include "gqe/kernels/reference.h"
#include "test_util.h"

namespace gqe {
namespace {

// Largest relative error (of the output's max magnitude) allowed for the decode step from bf16 K/V.
constexpr double kBf16DecodeTolerance = 2e-2;

struct Case {
  int64_t B, Tk, G, k, dh;
};

std::string describe(const Case& c) {
  std::ostringstream o;
  o << "B=" << c.B << " Tk=" << c.Tk << " G=" << c.G << " k=" << c.k << " dh=" << c.dh;
  return o.str();
}

std::vector<Case> cases() {
  return {
      {1, 1, 8, 1, 64},     // a single cached key
      {1, 7, 8, 1, 64},     // shorter than one tile; paper head layout
      {1, 1031, 8, 1, 64},  // several chunks, the last partial
      {2, 300, 4, 2, 24},   // k = 2, d_h not a multiple of the AVX-512 width
      {1, 1000, 1, 3, 5},   // G = 1, odd d_h smaller than one vector
      {3, 77, 2, 3, 33},    // odd d_h past one vector
      {1, 513, 3, 1, 17},   // odd G, a chunk boundary plus one
      {2, 64, 5, 2, 8},     // exactly one tile
  };
}

struct Inputs {
  at::Tensor q, qs, k, v;
};

Inputs random_inputs(const Case& c) {
  return {at::randn({c.B, 1, c.G * c.k, c.dh}), at::randn({c.B, 1, 1, c.dh}), at::randn({c.B, c.Tk, c.G, c.dh}),
          at::randn({c.B, c.Tk, c.G, c.dh})};
}

kernels::GqeDecodeOutput reference(const Inputs& in, const at::Tensor& lengths = {}) {
  auto d = [](const at::Tensor& t) { return t.defined() ? t.to(at::kDouble) : t; };
  return kernels::gqe_decode_reference(d(in.q), d(in.qs), d(in.k), d(in.v), lengths);
}

TEST(GqeDecode, MatchesReference) {
  at::manual_seed(1);
  for (const Case& c : cases()) {
    Inputs in = random_inputs(c);
    kernels::GqeDecodeOutput f = kernels::gqe_decode(in.q, in.qs, in.k, in.v);
    kernels::GqeDecodeOutput r = reference(in);
    ASSERT_EQ(f.slots.sizes(), in.q.sizes()) << describe(c);
    ASSERT_EQ(f.shared.sizes(), in.qs.sizes()) << describe(c);
    EXPECT_LT(test::max_rel_diff(f.slots.to(at::kDouble), r.slots), 1e-5) << describe(c);
    EXPECT_LT(test::max_rel_diff(f.shared.to(at::kDouble), r.shared), 1e-5) << describe(c);
  }
}

TEST(GqeDecode, WithoutSharedHeadIsPlainDecodeAttention) {
  at::manual_seed(2);
  for (const Case& c : cases()) {
    Inputs in = random_inputs(c);
    in.qs = at::Tensor();
    kernels::GqeDecodeOutput f = kernels::gqe_decode(in.q, in.qs, in.k, in.v);
    EXPECT_FALSE(f.shared.defined());
    at::Tensor want = kernels::flash_attention_reference(in.q.to(at::kDouble), in.k.to(at::kDouble),
                                                         in.v.to(at::kDouble), c.Tk - 1);
    EXPECT_LT(test::max_rel_diff(f.slots.to(at::kDouble), want), 1e-5) << describe(c);
  }
}

TEST(GqeDecode, SharedHeadAttendsToTheMeanKeysAndValues) {
  // Independent of the reference twin: one group's worth of attention against the mean K/V.
  at::manual_seed(3);
  Inputs in = random_inputs({1, 300, 4, 1, 16});
  at::Tensor want = kernels::flash_attention_reference(in.qs.to(at::kDouble), in.k.to(at::kDouble).mean(2, true),
                                                       in.v.to(at::kDouble).mean(2, true), 299);
  EXPECT_LT(test::max_rel_diff(kernels::gqe_decode(in.q, in.qs, in.k, in.v).shared.to(at::kDouble), want), 1e-5);
}

TEST(GqeDecode, SequencesOfUnequalLengthsInOneBatch) {
  at::manual_seed(4);
  Case c{5, 1031, 4, 2, 20};
  Inputs in = random_inputs(c);
  at::Tensor lengths = at::tensor(std::vector<int64_t>{1, 7, 1031, 256, 300});
  kernels::GqeDecodeOutput f = kernels::gqe_decode(in.q, in.qs, in.k, in.v, lengths);
  kernels::GqeDecodeOutput r = reference(in, lengths);
  EXPECT_LT(test::max_rel_diff(f.slots.to(at::kDouble), r.slots), 1e-5);
  EXPECT_LT(test::max_rel_diff(f.shared.to(at::kDouble), r.shared), 1e-5);
  // Keys past a sequence's length are never read: poisoning them changes nothing.
  at::Tensor k2 = in.k.clone(), v2 = in.v.clone();
  k2[1].narrow(0, 7, c.Tk - 7).fill_(std::numeric_limits<float>::quiet_NaN());
  v2[1].narrow(0, 7, c.Tk - 7).fill_(std::numeric_limits<float>::quiet_NaN());
  kernels::GqeDecodeOutput p = kernels::gqe_decode(in.q, in.qs, k2, v2, lengths);
  EXPECT_TRUE(at::equal(p.slots, f.slots));
  EXPECT_TRUE(at::equal(p.shared, f.shared));
}

TEST(GqeDecode, ReadsACacheViewInPlace) {
  // A KV cache hands out [B, len, G, d_h] views of [B, capacity, G, d_h] storage (strided over batches).
  at::manual_seed(5);
  Case c{3, 70, 2, 1, 12};
  Inputs in = random_inputs(c);
  at::Tensor ks = at::randn({c.B, 128, c.G, c.dh}), vs = at::randn({c.B, 128, c.G, c.dh});
  ks.narrow(1, 0, c.Tk).copy_(in.k), vs.narrow(1, 0, c.Tk).copy_(in.v);
  at::Tensor kview = ks.narrow(1, 0, c.Tk), vview = vs.narrow(1, 0, c.Tk);
  ASSERT_FALSE(kview.is_contiguous());
  kernels::GqeDecodeOutput a = kernels::gqe_decode(in.q, in.qs, kview, vview);
  kernels::GqeDecodeOutput b = kernels::gqe_decode(in.q, in.qs, in.k, in.v);
  EXPECT_TRUE(at::equal(a.slots, b.slots));
  EXPECT_TRUE(at::equal(a.shared, b.shared));
}

TEST(GqeDecode, SameBitsForAnyThreadCount) {
  at::manual_seed(6);
  Inputs in = random_inputs({2, 1500, 8, 1, 64});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  kernels::GqeDecodeOutput one = kernels::gqe_decode(in.q, in.qs, in.k, in.v);
  at::set_num_threads(std::max(2, threads));
  kernels::GqeDecodeOutput many = kernels::gqe_decode(in.q, in.qs, in.k, in.v);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.slots, many.slots));
  EXPECT_TRUE(at::equal(one.shared, many.shared));
}

void expect_error(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    FAIL() << "expected an error containing '" << part << "'";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(GqeDecode, RefusesGradientsAndBadArguments) {
  Inputs in = random_inputs({2, 9, 2, 1, 8});
  at::Tensor qg = in.q.clone().requires_grad_();
  expect_error([&] { kernels::gqe_decode(qg, in.qs, in.k, in.v); }, "gqe_decode: forward only");
  {
    torch::NoGradGuard no_grad;  // decode runs without autograd: then a parameter-derived query is fine
    EXPECT_NO_THROW(kernels::gqe_decode(qg, in.qs, in.k, in.v));
  }
  expect_error([&] { kernels::gqe_decode(in.q, in.qs, in.k, in.v, at::tensor(std::vector<int64_t>{3, 10})); },
               "lengths[1] = 10 outside 1..9");
  expect_error([&] { kernels::gqe_decode(in.q, in.qs, in.k, in.v, at::tensor(std::vector<int64_t>{0, 9})); },
               "lengths[0] = 0");
  expect_error([&] { kernels::gqe_decode(in.q.expand({2, 3, 2, 8}), in.qs, in.k, in.v); }, "one query position");
  expect_error([&] { kernels::gqe_decode(in.q, in.qs.expand({2, 1, 2, 8}), in.k, in.v); }, "q_shared must be");
  expect_error([&] { kernels::gqe_decode(at::randn({2, 1, 3, 8}), in.qs, in.k, in.v); }, "multiple of KV heads");
  expect_error([&] { kernels::gqe_decode(in.q.to(at::kDouble), in.qs, in.k, in.v); }, "fp32");
}

// bf16 K/V (a bf16 KV cache): with AVX512-BF16 the bf16 kernel (queries and probabilities rounded to bf16,
// fp32 accumulation), without it the fp32 kernel on the widened values. Compared with the reference on the
// same (bf16-valued) keys and values in double, and with the fp32 kernel on them; the bound is from the
// measured errors (docs/kernels.md), about 3x above the largest seen over these cases and seeds.
TEST(GqeDecode, Bf16KeysAndValuesMatchTheReference) {
  at::manual_seed(7);
  double worst_ref = 0, worst_fp32 = 0;
  for (const Case& c : cases()) {
    for (int rep = 0; rep < 3; ++rep) {
      Inputs in = random_inputs(c);
      const at::Tensor kb = in.k.to(at::kBFloat16), vb = in.v.to(at::kBFloat16);
      in.k = kb.to(at::kFloat), in.v = vb.to(at::kFloat);  // the values the cache holds
      kernels::GqeDecodeOutput f = kernels::gqe_decode(in.q, in.qs, kb, vb);
      kernels::GqeDecodeOutput r = reference(in);
      kernels::GqeDecodeOutput f32 = kernels::gqe_decode(in.q, in.qs, in.k, in.v);
      ASSERT_EQ(f.slots.scalar_type(), at::kFloat);
      const double e_ref = std::max(test::max_rel_diff(f.slots.to(at::kDouble), r.slots),
                                    test::max_rel_diff(f.shared.to(at::kDouble), r.shared));
      const double e_fp32 = std::max(test::max_rel_diff(f.slots, f32.slots), test::max_rel_diff(f.shared, f32.shared));
      worst_ref = std::max(worst_ref, e_ref), worst_fp32 = std::max(worst_fp32, e_fp32);
      EXPECT_LT(e_ref, kBf16DecodeTolerance) << describe(c);
      EXPECT_LT(e_fp32, kBf16DecodeTolerance) << describe(c);
    }
  }
  std::cout << "bf16 decode: max relative error " << worst_ref << " vs the reference, " << worst_fp32
            << " vs the fp32 kernel (" << (kernels::bf16::cpu_has_avx512_bf16() ? "AVX512-BF16 kernel" : "fp32 fallback")
            << ")\n";
}

TEST(GqeDecode, Bf16RaggedBatchAndCacheView) {
  at::manual_seed(8);
  const Case c{3, 700, 8, 1, 64};
  Inputs in = random_inputs(c);
  // A cache's view: capacity 1000 positions, 700 of them used.
  at::Tensor kcap = at::zeros({c.B, 1000, c.G, c.dh}, at::kBFloat16), vcap = at::zeros_like(kcap);
  kcap.narrow(1, 0, c.Tk).copy_(in.k), vcap.narrow(1, 0, c.Tk).copy_(in.v);
  const at::Tensor kb = kcap.narrow(1, 0, c.Tk), vb = vcap.narrow(1, 0, c.Tk);
  in.k = kb.to(at::kFloat), in.v = vb.to(at::kFloat);
  const at::Tensor lengths = at::tensor(std::vector<int64_t>{700, 1, 333});
  kernels::GqeDecodeOutput f = kernels::gqe_decode(in.q, in.qs, kb, vb, lengths);
  kernels::GqeDecodeOutput r = reference(in, lengths);
  EXPECT_LT(test::max_rel_diff(f.slots.to(at::kDouble), r.slots), kBf16DecodeTolerance);
  EXPECT_LT(test::max_rel_diff(f.shared.to(at::kDouble), r.shared), kBf16DecodeTolerance);
  // Same bits for any thread count.
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  kernels::GqeDecodeOutput one = kernels::gqe_decode(in.q, in.qs, kb, vb, lengths);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one.slots, f.slots));
  EXPECT_TRUE(at::equal(one.shared, f.shared));
  expect_error([&] { kernels::gqe_decode(in.q, in.qs, kb, in.v); }, "fp32 or both bf16");
}

}  // namespace
}  // namespace gqe
