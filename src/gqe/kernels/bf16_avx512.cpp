// AVX512-BF16 inner loops (bf16_avx512.h). Every function that uses the instructions carries the target
// attribute, so the build's own -march applies to nothing here; see the header for why this file includes
// nothing that other files include (no ATen, no standard library templates).
#include "gqe/kernels/bf16_avx512.h"

#include <cstdlib>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GQE_HAVE_BF16_KERNELS 1
#include <cpuid.h>
#include <immintrin.h>
#define GQE_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside their own shuffles (the false positive simd.h
// silences too).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#else
#define GQE_HAVE_BF16_KERNELS 0
#endif

namespace gqe::kernels::bf16 {
namespace {

bool detect() {
#if GQE_HAVE_BF16_KERNELS
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  // The OS saves XMM, YMM, the opmask registers and both halves of the ZMM state.
  if ((lo & 0xe6u) != 0xe6u) return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const unsigned need = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);  // AVX512F, DQ, BW, VL
  if ((b & need) != need || a < 1) return false;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a & (1u << 5)) != 0;  // AVX512_BF16
#else
  return false;
#endif
}

}  // namespace

bool cpu_has_avx512_bf16() {
  static const bool has = [] {
    const char* env = std::getenv("GQE_CPU_BF16");
    if (env && env[0] == '0' && env[1] == '\0') return false;
    return detect();
  }();
  return has;
}

namespace {
constexpr int64_t kTile = kFlashKeyTile;  // key positions per online-softmax step (decode and flash)
}  // namespace

int64_t decode_scratch_floats(int64_t rows, int64_t dh) {
  // scores [rows][kTile], bf16 probabilities [rows][kTile] (half a float each), the scrambled output
  // accumulators [rows][padded d_h]
  return rows * kTile + rows * kTile / 2 + rows * padded_head_dim(dh) + 64;
}

#if GQE_HAVE_BF16_KERNELS
namespace {

// e^x as simd::exp (simd.h) computes it, for AVX-512 here (simd.h follows the build's -march).
GQE_BF16_TARGET inline __m512 exp16(__m512 x) {
  const float lo = -87.3f;
  __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(lo)), _mm512_set1_ps(88.3f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), xc);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(lo), _CMP_GE_OQ), y);
}

// Lane i of the result is the sum of v[i]'s 16 lanes: 45 shuffles and adds for 16 horizontal sums (16
// separate reductions take about three times as many). The tree leaves the sums in the lane order kPerm;
// the final permute puts them back in order.
GQE_BF16_TARGET inline __m512 reduce16(const __m512* v) {
  __m512 w[8], z[4], u[2];
  for (int i = 0; i < 8; ++i)
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44), _mm512_shuffle_f32x4(v[i], v[i + 8], 0xee));
  for (int i = 0; i < 4; ++i)
    z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[i], w[i + 4], 0x88), _mm512_shuffle_f32x4(w[i], w[i + 4], 0xdd));
  for (int i = 0; i < 2; ++i)
    u[i] = _mm512_add_ps(_mm512_shuffle_ps(z[i], z[i + 2], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(z[i], z[i + 2], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  // Lane L of s holds v[kPerm[L]]'s sum; kPerm is its own inverse.
  const __m512i perm = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
  return _mm512_permutexvar_ps(perm, s);
}

GQE_BF16_TARGET inline __mmask32 chunk_mask(int64_t dh, int64_t c) {
  const int64_t rest = dh - 32 * c;
  return rest >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << rest) - 1u);
}

// Prefetches n rows of `bytes` each, `st` elements apart: the keys (values) kPrefetch positions ahead while
// the scores (outputs) of a block are computed. The cache's rows of one head are a position's stride apart,
// and with the hardware prefetcher alone the arithmetic did not overlap the memory reads: the step took
// about their sum.
constexpr int64_t kPrefetch = 128;
GQE_BF16_TARGET inline void prefetch_rows(const uint16_t* p, int64_t st, int64_t n, int64_t bytes) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t b = 0; b < bytes; b += 64)
      _mm_prefetch(reinterpret_cast<const char*>(p + j * st) + b, _MM_HINT_T0);
}

// 16 keys' scores for one query row: out[j] (+)= q . k_{t0+j} for j < nk (lanes past nk are 0).
GQE_BF16_TARGET inline void scores16(const uint16_t* q, const uint16_t* k, int64_t st, int64_t nk, int64_t dh,
                                     float* out, bool add) {
  __m512 acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_setzero_ps();
  const int64_t nch = padded_head_dim(dh) / 32;
  for (int64_t c = 0; c < nch; ++c) {
    const __mmask32 mk = chunk_mask(dh, c);
    const __m512bh qv = (__m512bh)_mm512_loadu_si512(q + 32 * c);
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j)
      if (j < nk)
        acc[j] = _mm512_dpbf16_ps(acc[j], qv, (__m512bh)_mm512_maskz_loadu_epi16(mk, k + j * st + 32 * c));
  }
  __m512 s = reduce16(acc);
  if (add) s = _mm512_add_ps(s, _mm512_loadu_ps(out));
  _mm512_storeu_ps(out, s);
}

// Output accumulators are kept per 32-dim chunk as (unpacklo, unpackhi) halves of the value pairs: lane i of
// the first half is dim 8*(i/4) + i%4, of the second half dim 8*(i/4) + 4 + i%4 (the in-lane order of
// vpunpck*wd). Position of dim d (within its chunk) in that layout:
inline int64_t scrambled(int64_t d) {
  const int64_t lane = d / 8, w = d % 8;
  return w < 4 ? 4 * lane + w : 16 + 4 * lane + (w - 4);
}

// O_rows += P_rows V over nt keys of one group, NR rows at a time: rows[i] indexes the scrambled
// accumulators Os (row stride dhp) and the bf16 probabilities P (row stride kTile).
template <int NR>
GQE_BF16_TARGET inline void pv_rows(const int64_t* rows, const uint16_t* P, const uint16_t* v, int64_t st, int64_t nt,
                                    int64_t dh, float* Os) {
  const int64_t dhp = padded_head_dim(dh), nch = dhp / 32;
  for (int64_t c = 0; c < nch; ++c) {
    const __mmask32 mk = chunk_mask(dh, c);
    __m512 lo[NR], hi[NR];
    for (int i = 0; i < NR; ++i) {
      lo[i] = _mm512_loadu_ps(Os + rows[i] * dhp + 32 * c);
      hi[i] = _mm512_loadu_ps(Os + rows[i] * dhp + 32 * c + 16);
    }
    for (int64_t t = 0; t < nt; t += 2) {
      const __m512i v0 = _mm512_maskz_loadu_epi16(mk, v + t * st + 32 * c);
      // An odd last key pairs with zeros (its partner's probability is 0 too, but memory past it may not be
      // readable, or may hold a NaN).
      const __m512i v1 = t + 1 < nt ? _mm512_maskz_loadu_epi16(mk, v + (t + 1) * st + 32 * c) : _mm512_setzero_si512();
      const __m512bh vl = (__m512bh)_mm512_unpacklo_epi16(v0, v1), vh = (__m512bh)_mm512_unpackhi_epi16(v0, v1);
      for (int i = 0; i < NR; ++i) {
        int32_t pair;
        __builtin_memcpy(&pair, P + rows[i] * kTile + t, sizeof pair);
        const __m512bh pp = (__m512bh)_mm512_set1_epi32(pair);
        lo[i] = _mm512_dpbf16_ps(lo[i], pp, vl);
        hi[i] = _mm512_dpbf16_ps(hi[i], pp, vh);
      }
    }
    for (int i = 0; i < NR; ++i) {
      _mm512_storeu_ps(Os + rows[i] * dhp + 32 * c, lo[i]);
      _mm512_storeu_ps(Os + rows[i] * dhp + 32 * c + 16, hi[i]);
    }
  }
}

GQE_BF16_TARGET void pv(const int64_t* rows, int64_t n, const uint16_t* P, const uint16_t* v, int64_t st, int64_t nt,
                        int64_t dh, float* Os) {
  for (; n >= 4; n -= 4, rows += 4) pv_rows<4>(rows, P, v, st, nt, dh, Os);
  switch (n) {
    case 3: pv_rows<3>(rows, P, v, st, nt, dh, Os); break;
    case 2: pv_rows<2>(rows, P, v, st, nt, dh, Os); break;
    case 1: pv_rows<1>(rows, P, v, st, nt, dh, Os); break;
    default: break;
  }
}

// Out[i][0 : 16 NV] (+)= sum_u pair(A[i], u) . B[u][0 : 16 NV] for RB rows: A rows of bf16 pairs (row stride
// lda elements), B rows of 16 NV pairs (stride ldb elements), Out fp32 (row stride ldo).
template <int RB, int NV>
GQE_BF16_TARGET inline void micro_tile(int64_t U, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
                                       float* Out, int64_t ldo, bool accumulate) {
  __m512 c[RB][NV];
  for (int i = 0; i < RB; ++i)
    for (int v = 0; v < NV; ++v) c[i][v] = accumulate ? _mm512_loadu_ps(Out + i * ldo + 16 * v) : _mm512_setzero_ps();
  for (int64_t u = 0; u < U; ++u) {
    __m512bh b[NV];
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(B + u * ldb + 32 * v);
    for (int i = 0; i < RB; ++i) {
      int32_t pair;
      __builtin_memcpy(&pair, A + i * lda + 2 * u, sizeof pair);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      for (int v = 0; v < NV; ++v) c[i][v] = _mm512_dpbf16_ps(c[i][v], a, b[v]);
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(Out + i * ldo + 16 * v, c[i][v]);
}

template <int RB>
GQE_BF16_TARGET inline void micro_rows(int64_t U, int64_t width, const uint16_t* A, int64_t lda, const uint16_t* B,
                                       int64_t ldb, float* Out, int64_t ldo, bool accumulate) {
  int64_t w = 0;
  for (; w + 64 <= width; w += 64) micro_tile<RB, 4>(U, A, lda, B + 2 * w, ldb, Out + w, ldo, accumulate);
  if (width - w == 32) micro_tile<RB, 2>(U, A, lda, B + 2 * w, ldb, Out + w, ldo, accumulate);
}

// rows x width (a multiple of 32) outputs from U pairs each, 6 rows at a time (24 accumulators of 32 zmm).
GQE_BF16_TARGET void micro_gemm_bf16(int64_t rows, int64_t U, int64_t width, const uint16_t* A, int64_t lda,
                                     const uint16_t* B, int64_t ldb, float* Out, int64_t ldo, bool accumulate) {
  int64_t i = 0;
  for (; i + 6 <= rows; i += 6) micro_rows<6>(U, width, A + i * lda, lda, B, ldb, Out + i * ldo, ldo, accumulate);
  const uint16_t* a = A + i * lda;
  float* o = Out + i * ldo;
  switch (rows - i) {
    case 5: micro_rows<5>(U, width, a, lda, B, ldb, o, ldo, accumulate); break;
    case 4: micro_rows<4>(U, width, a, lda, B, ldb, o, ldo, accumulate); break;
    case 3: micro_rows<3>(U, width, a, lda, B, ldb, o, ldo, accumulate); break;
    case 2: micro_rows<2>(U, width, a, lda, B, ldb, o, ldo, accumulate); break;
    case 1: micro_rows<1>(U, width, a, lda, B, ldb, o, ldo, accumulate); break;
    default: break;
  }
}

// One row's online-softmax step over a tile of kTile scores s, nv of them visible: updates m, l, rescales
// the output row o (n floats), writes the probabilities rounded to bf16 to p. The running sum is taken of
// the rounded probabilities, so that the output is an exact weighted mean of the values under the weights
// P V uses.
GQE_BF16_TARGET inline void softmax_step(const float* s, int64_t nv, float& m, float& l, float* o, int64_t n,
                                         uint16_t* p) {
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  __m512 x[4];
  __m512 mx = neg_inf;
  for (int c = 0; c < 4; ++c) {
    const int64_t valid = nv - 16 * c;
    const __mmask16 keep = valid >= 16 ? __mmask16(0xffff) : valid <= 0 ? __mmask16(0) : __mmask16((1u << valid) - 1u);
    x[c] = _mm512_mask_loadu_ps(neg_inf, keep, s + 16 * c);
    mx = _mm512_max_ps(mx, x[c]);
  }
  const float tile_max = _mm512_reduce_max_ps(mx);
  const float m_new = m > tile_max ? m : tile_max;
  const float alpha = m_new == m ? 1.f : __builtin_expf(m - m_new);  // 0 on the first tile
  const __m512 mv = _mm512_set1_ps(m_new);
  __m512 sum = _mm512_setzero_ps();
  for (int c = 0; c < 4; c += 2) {
    const __m512 p0 = exp16(_mm512_sub_ps(x[c], mv)), p1 = exp16(_mm512_sub_ps(x[c + 1], mv));
    const __m512i pb = (__m512i)_mm512_cvtne2ps_pbh(p1, p0);
    _mm512_storeu_si512(p + 16 * c, pb);
    const __m512i even = _mm512_slli_epi32(pb, 16), odd = _mm512_and_si512(pb, _mm512_set1_epi32(int(0xffff0000u)));
    sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_castsi512_ps(even), _mm512_castsi512_ps(odd)));
  }
  l = l * alpha + _mm512_reduce_add_ps(sum);
  m = m_new;
  if (alpha != 1.f) {
    const __m512 av = _mm512_set1_ps(alpha);
    for (int64_t j = 0; j < n; j += 16) _mm512_storeu_ps(o + j, _mm512_mul_ps(_mm512_loadu_ps(o + j), av));
  }
}

}  // namespace

int64_t flash_scratch_floats(int64_t R, int64_t) { return R * kFlashKeyTile + R * kFlashKeyTile / 2 + 32; }

GQE_BF16_TARGET void flash_block(const FlashBlock& a, float* O, float* m, float* l, float* scratch) {
  const int64_t R = a.R, M = a.M, dhp = padded_head_dim(a.dh), first_pos = a.first_pos;
  float* S = scratch;                                          // [R][kTile] scores
  uint16_t* P = reinterpret_cast<uint16_t*>(S + R * kTile);  // [R][kTile] bf16 probabilities
  for (int64_t i = 0; i < R * dhp; ++i) O[i] = 0.f;
  for (int64_t i = 0; i < R; ++i) m[i] = -__builtin_inff(), l[i] = 0.f;
  const int64_t key_end = first_pos + R / M;
  for (int64_t k0 = 0, tile = 0; k0 < key_end; k0 += kTile, ++tile) {
    // Rows before r_lo (positions < k0) see none of this tile: skipped.
    const int64_t r_lo = (k0 > first_pos ? k0 - first_pos : 0) * M;
    micro_gemm_bf16(R - r_lo, dhp / 2, kTile, a.q + r_lo * dhp, dhp, a.k_tiles + tile * a.k_tile_stride, 2 * kTile,
                    S + r_lo * kTile, kTile, false);  // S = Q K^T
    const bool diagonal = k0 + kTile > first_pos + 1;
    for (int64_t r = r_lo; r < R; ++r) {
      int64_t nv = kTile;
      if (diagonal) {
        nv = first_pos + r / M + 1 - k0;
        nv = nv < 0 ? 0 : nv > kTile ? kTile : nv;
      }
      softmax_step(S + r * kTile, nv, m[r], l[r], O + r * dhp, dhp, P + r * kTile);
    }
    micro_gemm_bf16(R - r_lo, kTile / 2, dhp, P + r_lo * kTile, kTile, a.v_tiles + tile * a.v_tile_stride, 2 * dhp,
                    O + r_lo * dhp, dhp, true);  // O += P V
  }
}

GQE_BF16_TARGET void decode_chunk(const DecodeChunk& a, float* O, float* m, float* l, float* scratch) {
  const int64_t G = a.G, M = a.M, R = M + (a.shared ? 1 : 0), rows = G * M + (a.shared ? 1 : 0), srow = G * M;
  const int64_t dh = a.dh, dhp = padded_head_dim(dh);
  float* S = scratch;                                        // [rows][kTile] scores
  uint16_t* P = reinterpret_cast<uint16_t*>(S + rows * kTile);  // [rows][kTile] bf16 probabilities
  float* Os = S + rows * kTile + rows * kTile / 2 + 16;      // [rows][dhp] scrambled accumulators
  Os = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(Os) + 63) & ~uintptr_t(63));
  for (int64_t i = 0; i < rows * dhp; ++i) Os[i] = 0.f;
  for (int64_t i = 0; i < rows; ++i) m[i] = -__builtin_inff(), l[i] = 0.f;
  int64_t row_ids[64];  // one group's rows (slot heads, then the shared head), in blocks of up to 64
  for (int64_t t0 = a.c0; t0 < a.c1; t0 += kTile) {
    const int64_t nt = a.c1 - t0 < kTile ? a.c1 - t0 : kTile;
    // Scores: each key row is read from memory once; the group's R query rows reuse it from L1. Blocks of 16
    // positions, all groups of a block before the next, so that memory is read in order (all heads of a
    // position are adjacent in the cache); group by group over a whole tile jumps a position's stride at
    // every row and the step stops being bound by memory bandwidth.
    for (int64_t tb = 0; tb < nt; tb += 16) {
      const int64_t nk = nt - tb < 16 ? nt - tb : 16;
      for (int64_t g = 0; g < G; ++g) {
        const uint16_t* kg = a.k + (t0 + tb) * a.st + g * a.sg;
        const uint16_t* qg = a.q + g * R * dhp;
        const int64_t ahead = a.len - (t0 + kPrefetch + tb);  // positions of the block kPrefetch ahead
        if (ahead > 0) prefetch_rows(kg + kPrefetch * a.st, a.st, ahead < 16 ? ahead : 16, 2 * dh);
        for (int64_t r = 0; r < M; ++r) scores16(qg + r * dhp, kg, a.st, nk, dh, S + (g * M + r) * kTile + tb, false);
        if (a.shared) scores16(qg + M * dhp, kg, a.st, nk, dh, S + srow * kTile + tb, g > 0);
      }
    }
    // Online softmax per row (the tile's positions past nt are masked).
    for (int64_t i = 0; i < rows; ++i) softmax_step(S + i * kTile, nt, m[i], l[i], Os + i * dhp, dhp, P + i * kTile);
    // Outputs: each value row is read from memory once, for its group's rows; blocks of 16 positions in
    // memory order, as for the scores.
    for (int64_t tb = 0; tb < nt; tb += 16) {
      const int64_t nk = nt - tb < 16 ? nt - tb : 16;
      for (int64_t g = 0; g < G; ++g) {
        const uint16_t* vg = a.v + (t0 + tb) * a.st + g * a.sg;
        const int64_t ahead = a.len - (t0 + kPrefetch + tb);
        if (ahead > 0) prefetch_rows(vg + kPrefetch * a.st, a.st, ahead < 16 ? ahead : 16, 2 * dh);
        for (int64_t r0 = 0; r0 < R; r0 += 64) {
          const int64_t n = R - r0 < 64 ? R - r0 : 64;
          for (int64_t i = 0; i < n; ++i) row_ids[i] = r0 + i < M ? g * M + r0 + i : srow;
          pv(row_ids, n, P + tb, vg, a.st, nk, dh, Os);
        }
      }
    }
  }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t d = 0; d < dh; ++d) O[i * dh + d] = Os[i * dhp + (d / 32) * 32 + scrambled(d % 32)];
}

#else  // no AVX512-BF16 kernels in this build: cpu_has_avx512_bf16() is false, so these are never called

void decode_chunk(const DecodeChunk&, float*, float*, float*, float*) { std::abort(); }
void flash_block(const FlashBlock&, float*, float*, float*, float*) { std::abort(); }
int64_t flash_scratch_floats(int64_t, int64_t) { return 0; }

#endif

}  // namespace gqe::kernels::bf16
