// The one small matrix product the attention kernels are built from, register-blocked:
//   Out[i, 0:width] (+)= sum_t A[i*a_row + t*a_inner] * Bm[t*ldb + 0:width]
// A is read one scalar at a time (broadcast), so any strides work: A row-major (a_row = lda, a_inner = 1)
// or A transposed (a_row = 1, a_inner = lda) — the latter gives P^T dO and dS^T Q without a transpose.
// Bm and Out are row-major with `width` a multiple of simd::kW (callers pad head_dim; key tiles are kW-aligned).
#pragma once
#include <type_traits>
#include <utility>

#include "gqe/kernels/simd.h"

namespace gqe::kernels {

namespace detail {

#if defined(__AVX512F__)
constexpr int kRowBlock = 6, kVecBlock = 4;  // 24 accumulators of 32 zmm
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kRowBlock = 6, kVecBlock = 2;  // 12 accumulators of 16 ymm
#else
constexpr int kRowBlock = 4, kVecBlock = 4;
#endif

// Calls f(std::integral_constant<int, n>{}) for a runtime row count n in 1..Max. The row-block kernels are
// templates on their row count so that their accumulators stay in registers; this turns a leftover count
// into that template argument whatever kRowBlock the instruction set gives.
template <int Max, class F>
inline void with_row_count(int n, F&& f) {
  if constexpr (Max > 1) {
    if (n < Max) return with_row_count<Max - 1>(n, std::forward<F>(f));
  }
  f(std::integral_constant<int, Max>{});
}

template <int RB, int NV>
inline void micro_tile(int64_t inner, const float* A, int64_t a_row, int64_t a_inner, const float* Bm, int64_t ldb,
                       float* Out, int64_t ldo, bool accumulate) {
  using namespace simd;
  Vec c[RB][NV];
  for (int i = 0; i < RB; ++i)
    for (int v = 0; v < NV; ++v) c[i][v] = accumulate ? load(Out + i * ldo + v * kW) : zero();
  for (int64_t t = 0; t < inner; ++t) {
    const float* b = Bm + t * ldb;
    Vec bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(b + v * kW);
    const float* a = A + t * a_inner;
    for (int i = 0; i < RB; ++i) {
      Vec ai = set1(a[i * a_row]);
      for (int v = 0; v < NV; ++v) c[i][v] = fma(ai, bv[v], c[i][v]);
    }
  }
  for (int i = 0; i < RB; ++i)
    for (int v = 0; v < NV; ++v) store(Out + i * ldo + v * kW, c[i][v]);
}

template <int RB>
inline void micro_row_block(int64_t inner, int64_t width, const float* A, int64_t a_row, int64_t a_inner,
                            const float* Bm, int64_t ldb, float* Out, int64_t ldo, bool accumulate) {
  constexpr int step = kVecBlock * simd::kW;
  int64_t w0 = 0;
  for (; w0 + step <= width; w0 += step)
    micro_tile<RB, kVecBlock>(inner, A, a_row, a_inner, Bm + w0, ldb, Out + w0, ldo, accumulate);
  const int rest = int((width - w0) / simd::kW);  // whole vectors left, < kVecBlock
  switch (rest) {
    case 0: break;
    case 1: micro_tile<RB, 1>(inner, A, a_row, a_inner, Bm + w0, ldb, Out + w0, ldo, accumulate); break;
    case 2: micro_tile<RB, (kVecBlock > 2 ? 2 : 1)>(inner, A, a_row, a_inner, Bm + w0, ldb, Out + w0, ldo, accumulate); break;
    default: micro_tile<RB, (kVecBlock > 3 ? 3 : 1)>(inner, A, a_row, a_inner, Bm + w0, ldb, Out + w0, ldo, accumulate); break;
  }
}

}  // namespace detail

// rows x width outputs, `inner` products each. width % simd::kW == 0.
inline void micro_gemm(int64_t rows, int64_t inner, int64_t width, const float* A, int64_t a_row, int64_t a_inner,
                       const float* Bm, int64_t ldb, float* Out, int64_t ldo, bool accumulate) {
  using namespace detail;
  int64_t i0 = 0;
  for (; i0 + kRowBlock <= rows; i0 += kRowBlock)
    micro_row_block<kRowBlock>(inner, width, A + i0 * a_row, a_row, a_inner, Bm, ldb, Out + i0 * ldo, ldo, accumulate);
  const float* a = A + i0 * a_row;
  float* o = Out + i0 * ldo;
  if (rows > i0)
    with_row_count<kRowBlock - 1>(int(rows - i0), [&](auto rb) {
      micro_row_block<decltype(rb)::value>(inner, width, a, a_row, a_inner, Bm, ldb, o, ldo, accumulate);
    });
}

}  // namespace gqe::kernels
