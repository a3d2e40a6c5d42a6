// Work distribution for the hand-written kernels: items of uneven cost (causal attention, experts'
// buckets) on libtorch's intra-op threads, either first-come (fastest) or by a fixed plan (when each
// worker accumulates into its own buffer and the result must be bit-reproducible).
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace gqe::kernels {

// Runs body(item) for item in [0, n) on libtorch's intra-op threads, handing items out dynamically (causal
// work per item is uneven). body also gets the worker's slot in [0, at::get_num_threads()).
template <typename F>
void parallel_items(int64_t n, F body) {
  if (n <= 0) return;
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), n);
  std::atomic<int64_t> next{0};
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = next++; item < n; item = next++) body(item, begin);
  });
}

// Runs body(item, worker) for item in [0, n) on `workers` threads with a fixed assignment: items in index
// order go to the worker with the least cost so far (lowest index on ties). The plan depends only on n,
// workers and cost, so each worker sees the same items in the same order on every run.
template <typename Cost, typename F>
void parallel_items_static(int64_t n, int64_t workers, Cost cost, F body) {
  if (n <= 0) return;
  workers = std::max<int64_t>(1, std::min(workers, n));
  std::vector<std::vector<int64_t>> plan(static_cast<size_t>(workers));
  std::vector<double> load(static_cast<size_t>(workers), 0.0);
  for (int64_t item = 0; item < n; ++item) {
    const auto w = std::min_element(load.begin(), load.end()) - load.begin();
    plan[size_t(w)].push_back(item);
    load[size_t(w)] += cost(item);
  }
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w)
      for (int64_t item : plan[size_t(w)]) body(item, w);
  });
}

}  // namespace gqe::kernels
