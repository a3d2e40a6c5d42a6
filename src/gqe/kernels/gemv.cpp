#include "gqe/kernels/gemv.h"

#include <ATen/Parallel.h>

#include "gqe/kernels/cpu_check.h"
#include "gqe/kernels/simd.h"

namespace gqe::kernels {
namespace {

// Outputs computed together: each reads its own row of W; their accumulators (kOut x R) and the R rows of x
// stay in registers (at most 24 of AVX-512's 32).
template <int R>
constexpr int64_t outputs_per_block() {
  return R <= 4 ? 4 : 2;
}

// y[r][n] for n in [n0, n1) and r < R: x rows are R x K (row stride ldx), W is N x K contiguous, y R x N
// (row stride ldy).
template <int R, int64_t kOut = outputs_per_block<R>()>
void rows_block(const float* x, int64_t ldx, const float* w, int64_t K, float* y, int64_t ldy, int64_t n0,
                int64_t n1) {
  using namespace simd;
  const int64_t kv = K - K % kW;
  int64_t n = n0;
  for (; n + kOut <= n1; n += kOut) {
    Vec acc[kOut][R];
    for (int j = 0; j < kOut; ++j)
      for (int r = 0; r < R; ++r) acc[j][r] = zero();
    const float* wn = w + n * K;
    for (int64_t k = 0; k < kv; k += kW) {
      Vec xr[R];
      for (int r = 0; r < R; ++r) xr[r] = load(x + r * ldx + k);
      for (int j = 0; j < kOut; ++j) {
        const Vec wv = load(wn + j * K + k);
        for (int r = 0; r < R; ++r) acc[j][r] = fma(wv, xr[r], acc[j][r]);
      }
    }
    for (int j = 0; j < kOut; ++j)
      for (int r = 0; r < R; ++r) {
        float s = hsum(acc[j][r]);
        for (int64_t k = kv; k < K; ++k) s += wn[j * K + k] * x[r * ldx + k];
        y[r * ldy + n + j] = s;
      }
  }
  for (; n < n1; ++n) {
    const float* wn = w + n * K;
    for (int r = 0; r < R; ++r) {
      Vec acc = zero();
      for (int64_t k = 0; k < kv; k += kW) acc = fma(load(wn + k), load(x + r * ldx + k), acc);
      float s = hsum(acc);
      for (int64_t k = kv; k < K; ++k) s += wn[k] * x[r * ldx + k];
      y[r * ldy + n] = s;
    }
  }
}

// The least weight (floats) a thread is woken for: waking the pool costs microseconds, about as long as
// one thread takes to read 64 KB from the cache.
constexpr int64_t kChunkFloats = 16384;

template <int R>
void rows_all(const float* x, int64_t ldx, const float* w, int64_t N, int64_t K, float* y) {
  // Chunks of whole blocks (kAlign outputs: a multiple of every block size), at least kChunkFloats of W
  // each, so that a thread's start costs little; a smaller W is read by the calling thread alone.
  constexpr int64_t kAlign = 4;
  const int64_t grain =
      std::max<int64_t>(kAlign, ((kChunkFloats / std::max<int64_t>(K, 1)) + kAlign - 1) / kAlign * kAlign);
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) {
    // Ranges start at multiples of kAlign so that no thread's range splits a block.
    const int64_t b = begin / kAlign * kAlign, e = end == N ? N : end / kAlign * kAlign;
    if (b < e) rows_block<R>(x, ldx, w, K, y, N, b, e);
  });
}

}  // namespace

bool linear_rows_applies(const at::Tensor& x, const at::Tensor& w) {
  if (!x.device().is_cpu() || !w.device().is_cpu()) return false;
  if (x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat) return false;
  if (x.dim() < 1 || w.dim() != 2 || x.size(-1) != w.size(1)) return false;
  if (at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad())) return false;
  const int64_t rows = x.size(-1) == 0 ? 0 : x.numel() / x.size(-1);
  return rows >= 1 && rows <= kLinearRowsMax;
}

at::Tensor linear_rows(const at::Tensor& x, const at::Tensor& w) {
  check_on_cpu("linear_rows", "x", x);
  check_on_cpu("linear_rows", "w", w);
  TORCH_CHECK(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat,
              "linear_rows: x and w must be float32, got ", x.scalar_type(), " and ", w.scalar_type());
  TORCH_CHECK(w.dim() == 2, "linear_rows: w must be [N, K], got ", w.sizes());
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear_rows: x must be [..., ", w.size(1), "], got ",
              x.sizes());
  const int64_t K = w.size(1), N = w.size(0);
  const int64_t rows = K == 0 ? 0 : x.numel() / K;
  TORCH_CHECK(rows >= 1 && rows <= kLinearRowsMax, "linear_rows: x must have 1 to ", kLinearRowsMax,
              " rows, got ", rows);
  const at::Tensor wc = w.contiguous();
  const at::Tensor xc = x.reshape({rows, K}).contiguous();
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = N;
  at::Tensor y = at::empty(shape, x.options());
  const float* xp = xc.data_ptr<float>();
  const float* wp = wc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  switch (rows) {
    case 1: rows_all<1>(xp, K, wp, N, K, yp); break;
    case 2: rows_all<2>(xp, K, wp, N, K, yp); break;
    case 3: rows_all<3>(xp, K, wp, N, K, yp); break;
    case 4: rows_all<4>(xp, K, wp, N, K, yp); break;
    case 5: rows_all<5>(xp, K, wp, N, K, yp); break;
    case 6: rows_all<6>(xp, K, wp, N, K, yp); break;
    case 7: rows_all<7>(xp, K, wp, N, K, yp); break;
    default: rows_all<8>(xp, K, wp, N, K, yp); break;
  }
  return y;
}

at::Tensor linear_rows_reference(const at::Tensor& x, const at::Tensor& w) { return at::linear(x, w); }

at::Tensor linear_row_blocks(const at::Tensor& x, const at::Tensor& w, const at::Tensor& starts, int64_t rows) {
  check_on_cpu("linear_row_blocks", "x", x);
  check_on_cpu("linear_row_blocks", "w", w);
  check_on_cpu("linear_row_blocks", "starts", starts);
  TORCH_CHECK(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat,
              "linear_row_blocks: x and w must be float32, got ", x.scalar_type(), " and ", w.scalar_type());
  TORCH_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1) && x.numel() == w.size(1),
              "linear_row_blocks: x must be one row [..., ", w.size(1), "] for w [N, K], got x ", x.sizes(), " and w ",
              w.sizes());
  TORCH_CHECK(starts.scalar_type() == at::kLong && starts.dim() == 1, "linear_row_blocks: starts must be [n] int64");
  TORCH_CHECK(rows >= 1, "linear_row_blocks: rows must be >= 1, got ", rows);
  const int64_t K = w.size(1), n = starts.numel();
  const at::Tensor wc = w.contiguous(), xc = x.reshape({1, K}).contiguous(), sc = starts.contiguous();
  const int64_t* st = sc.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    TORCH_CHECK(st[i] >= 0 && st[i] + rows <= w.size(0), "linear_row_blocks: block ", i, " [", st[i], ", ",
                st[i] + rows, ") is outside w's ", w.size(0), " rows");
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = n * rows;
  at::Tensor y = at::empty(shape, x.options());
  const float* xp = xc.data_ptr<float>();
  const float* wp = wc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // Each block is a small linear_rows of one row; the blocks share the threads in one parallel region.
  const int64_t grain = std::max<int64_t>(1, (kChunkFloats + rows * K - 1) / std::max<int64_t>(rows * K, 1));
  at::parallel_for(0, n, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) rows_block<1>(xp, K, wp + st[i] * K, K, yp + i * rows, n * rows, 0, rows);
  });
  return y;
}

at::Tensor linear_row_blocks_reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& starts, int64_t rows) {
  const at::Tensor idx = (starts.unsqueeze(1) + at::arange(rows, starts.options()).unsqueeze(0)).reshape({-1});
  return at::linear(x, w.index_select(0, idx));
}

}  // namespace gqe::kernels
