#include "gqe/kernels/fma_peak.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "gqe/kernels/simd.h"

namespace gqe::kernels {

const char* simd_isa_name() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2+fma";
#else
  return "scalar";
#endif
}

namespace {

// 12 independent accumulators: more than latency x throughput (4 x 2 on current x86 cores) FMAs in flight.
constexpr int kChains = 12;

// `iters` rounds of kChains FMAs; returns a value that depends on all of them so none is optimised away.
float fma_chains(int64_t iters) {
  using namespace simd;
  Vec acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = set1(1.0f + 1e-3f * float(c));
  const Vec a = set1(0.999999f), b = set1(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = fma(acc[c], a, b);
  Vec s = acc[0];
  for (int c = 1; c < kChains; ++c) s = add(s, acc[c]);
  return hsum(s);
}

}  // namespace

double measure_fma_peak_gflops(int threads) {
  threads = std::clamp(threads, 1, at::get_num_threads());  // one item per pool thread, all at once
  const int64_t iters = 4000000;
  const double flops_per_thread = 2.0 * simd::kW * kChains * double(iters);
  std::atomic<float> sink{0};
  std::vector<double> best(size_t(threads), 1e30);
  // Three rounds, each thread's best time: the first round also wakes the thread pool and the clock.
  for (int round = 0; round < 3; ++round) {
    at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const auto t0 = std::chrono::steady_clock::now();
        sink = sink + fma_chains(iters);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best[size_t(t)] = std::min(best[size_t(t)], s);
      }
    });
  }
  double total = 0;
  for (double s : best) total += flops_per_thread / s;
  return total / 1e9;
}

}  // namespace gqe::kernels
