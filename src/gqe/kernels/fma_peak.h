// The instruction set the hand-written kernels were compiled for, and the fused multiply-add peak it gives
// on this machine: the yardstick for the kernels' GFLOP/s (`gqe env`, `gqe bench`).
#pragma once

namespace gqe::kernels {

// "avx512", "avx2+fma" or "scalar" (simd.h's choice at compile time).
const char* simd_isa_name();

// Measured FMA throughput in GFLOP/s (2 flops per lane per FMA) of simd.h's vectors with `threads` threads
// (at most libtorch's intra-op threads) running at once, each a register-resident chain set long enough to hide the FMA latency. Takes ~0.3 s.
double measure_fma_peak_gflops(int threads);

}  // namespace gqe::kernels
