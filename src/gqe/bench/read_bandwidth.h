// The machine's memory read bandwidth: the yardstick for a decode step, which reads every weight once
// (as the FMA peak is for the attention kernels' GFLOP/s).
#pragma once

namespace gqe::bench {

// Measured read bandwidth in GB/s (1e9 bytes) of `threads` threads (at most libtorch's intra-op threads)
// summing disjoint parts of a buffer far larger than the caches (256 MB, in 2 MB pages where the kernel
// allows), with simd.h's vectors: the best of a few passes. 0 if the buffer cannot be had. Takes ~0.3 s.
double measure_read_bandwidth_gbs(int threads);

}  // namespace gqe::bench
