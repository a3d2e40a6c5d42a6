#include "gqe/bench/read_bandwidth.h"

#include <ATen/Parallel.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>

#include "gqe/kernels/simd.h"

namespace gqe::bench {
namespace {

// Sum of p[0, n) with independent accumulators (n a multiple of 4 * kW), so that loads, not adds, set the pace.
float sum_floats(const float* p, int64_t n) {
  using namespace kernels::simd;
  Vec a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
  for (int64_t i = 0; i < n; i += 4 * kW) {
    a0 = add(a0, load(p + i));
    a1 = add(a1, load(p + i + kW));
    a2 = add(a2, load(p + i + 2 * kW));
    a3 = add(a3, load(p + i + 3 * kW));
  }
  return hsum(add(add(a0, a1), add(a2, a3)));
}

}  // namespace

double measure_read_bandwidth_gbs(int threads) {
  threads = std::clamp(threads, 1, at::get_num_threads());
  constexpr int64_t kFloats = int64_t(64) << 20;  // 256 MB
  // In 2 MB pages where the kernel gives them (as a loaded checkpoint's file pages mostly are): with 4 KB
  // pages the TLB misses, not the memory, would set the pace.
  constexpr size_t kHuge = size_t(2) << 20;
  std::unique_ptr<float, decltype(&std::free)> buf(
      static_cast<float*>(std::aligned_alloc(kHuge, size_t(kFloats) * sizeof(float))), &std::free);
  if (!buf) return 0;
  ::madvise(buf.get(), size_t(kFloats) * sizeof(float), MADV_HUGEPAGE);
  std::fill(buf.get(), buf.get() + kFloats, 1e-3f);
  const float* p = buf.get();
  const int64_t per_thread = kFloats / threads / (4 * kernels::simd::kW) * (4 * kernels::simd::kW);
  std::atomic<float> sink{0};
  double best = 1e30;
  // The first pass also wakes the thread pool.
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) sink = sink + sum_floats(p + t * per_thread, per_thread);
    });
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return double(per_thread) * threads * sizeof(float) / best / 1e9;
}

}  // namespace gqe::bench
