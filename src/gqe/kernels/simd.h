// A minimal fp32 vector layer for the hand-written kernels: one type `Vec` of width kW with the handful
// of operations the attention kernels need. AVX-512 where the compiler targets it (-march=native on
// this machine), else AVX2+FMA, else a portable scalar path (width 1) that any compiler builds.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside their own reductions (a known false positive);
// off for this header's code only, not for its includers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace gqe::kernels::simd {

#if defined(__AVX512F__)
constexpr int kW = 16;
using Vec = __m512;
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec set1(float x) { return _mm512_set1_ps(x); }
inline Vec zero() { return _mm512_setzero_ps(); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec vmax(Vec a, Vec b) { return _mm512_max_ps(a, b); }
inline Vec vmin(Vec a, Vec b) { return _mm512_min_ps(a, b); }
inline float hsum(Vec a) { return _mm512_reduce_add_ps(a); }
inline float hmax(Vec a) { return _mm512_reduce_max_ps(a); }
inline Vec round_nearest(Vec a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// 2^n for integral-valued float n in [-126, 127].
inline Vec pow2i(Vec n) {
  __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
  return _mm512_castsi512_ps(_mm512_slli_epi32(i, 23));
}
// a where x >= lo, else 0.
inline Vec zero_below(Vec a, Vec x, float lo) {
  __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(lo), _CMP_GE_OQ);
  return _mm512_maskz_mov_ps(keep, a);
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kW = 8;
using Vec = __m256;
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec set1(float x) { return _mm256_set1_ps(x); }
inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec vmax(Vec a, Vec b) { return _mm256_max_ps(a, b); }
inline Vec vmin(Vec a, Vec b) { return _mm256_min_ps(a, b); }
inline float hsum(Vec a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
inline float hmax(Vec a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
inline Vec round_nearest(Vec a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline Vec pow2i(Vec n) {
  __m256i i = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(i, 23));
}
inline Vec zero_below(Vec a, Vec x, float lo) { return _mm256_and_ps(a, _mm256_cmp_ps(x, _mm256_set1_ps(lo), _CMP_GE_OQ)); }
#else
// Portable path: width 1. The compiler may still auto-vectorise the loops around it.
constexpr int kW = 1;
struct Vec {
  float x;
};
inline Vec load(const float* p) { return {*p}; }
inline void store(float* p, Vec v) { *p = v.x; }
inline Vec set1(float x) { return {x}; }
inline Vec zero() { return {0.f}; }
inline Vec fma(Vec a, Vec b, Vec c) { return {a.x * b.x + c.x}; }
inline Vec add(Vec a, Vec b) { return {a.x + b.x}; }
inline Vec sub(Vec a, Vec b) { return {a.x - b.x}; }
inline Vec mul(Vec a, Vec b) { return {a.x * b.x}; }
inline Vec vmax(Vec a, Vec b) { return {a.x > b.x ? a.x : b.x}; }
inline Vec vmin(Vec a, Vec b) { return {a.x < b.x ? a.x : b.x}; }
inline float hsum(Vec a) { return a.x; }
inline float hmax(Vec a) { return a.x; }
inline Vec round_nearest(Vec a) { return {std::nearbyint(a.x)}; }
inline Vec pow2i(Vec n) { return {std::ldexp(1.0f, int(n.x))}; }
inline Vec zero_below(Vec a, Vec x, float lo) { return {x.x >= lo ? a.x : 0.f}; }
#endif

// e^x to ~2 ulp for x in [-87.3, 88.3]; exactly 0 below (including -inf: masked scores), so that
// masked entries of a softmax row contribute nothing. Cephes-style: x = n ln2 + r, |r| <= ln2/2,
// e^r by a degree-7 polynomial, 2^n through the exponent bits.
inline Vec exp(Vec x) {
  const float lo = -87.3f;
  Vec xc = vmin(vmax(x, set1(lo)), set1(88.3f));
  Vec n = round_nearest(mul(xc, set1(1.44269504088896341f)));
  Vec r = fma(n, set1(-0.693359375f), xc);
  r = fma(n, set1(2.12194440e-4f), r);
  Vec p = set1(1.9875691500e-4f);
  p = fma(p, r, set1(1.3981999507e-3f));
  p = fma(p, r, set1(8.3334519073e-3f));
  p = fma(p, r, set1(4.1665795894e-2f));
  p = fma(p, r, set1(1.6666665459e-1f));
  p = fma(p, r, set1(5.0000001201e-1f));
  p = fma(p, mul(r, r), add(r, set1(1.f)));
  return zero_below(mul(p, pow2i(n)), x, lo);
}

}  // namespace gqe::kernels::simd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
