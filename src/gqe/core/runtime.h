// Threads and BLAS: gqe configures libtorch's intra-op threads itself (libtorch may start with 1) and
// reports which BLAS library the process actually loaded.
#pragma once
#include <c10/core/Device.h>

#include <string>

namespace gqe {

// Keeps freed heap memory in the process for reuse (glibc: no mmap for large blocks, no trimming) unless
// the environment sets GQE_MALLOC=system. Tensors of several MB are otherwise mapped fresh on every
// allocation and unmapped on free, and page-faulting them in costs more than the arithmetic on them:
// docs/kernels.md has the measured effect on the attention layer.
// Returns a short description of what is in effect. Call once, early (the gqe binary's main does).
std::string configure_allocator();

// n <= 0 means all cores. Sets libtorch's intra-op threads and, when the loaded BLAS is OpenBLAS,
// its thread count too. Returns the number of threads in effect.
int configure_threads(int n);
// The shared library that provides sgemm_ in this process (e.g. ".../openblas-openmp/libblas.so.3").
std::string loaded_blas_library();
// Measured GFLOP/s of an n x n float matmul (median of a few runs).
double measure_matmul_gflops(int n = 1024, int repeats = 5);
// One line: CPU model, threads, BLAS, allocator, libtorch version.
std::string describe_runtime();

// The device `name` says: cpu or cuda[:N]; "cuda" without an index is cuda:local_rank (one GPU per rank
// under torchrun). Errors begin with `what` (e.g. "gqe train: --device") and name the value: not cpu or
// cuda[:N]; CUDA asked for but this build or machine has none.
c10::Device parse_device(const std::string& name, const std::string& what, int local_rank = 0);

}  // namespace gqe
