// For the CUDA test binary (test_cuda, built with GQE_CUDA only). Test suites whose name ends in "Gpu"
// need a CUDA device; the others run the device-agnostic CUDA-path code on the CPU, so that every build
// with GQE_CUDA checks it even where no GPU exists. CMake registers the two halves as separate CTest
// entries; the GPU half reports itself skipped (exit 77) on a machine without a device.
#pragma once
#include <torch/cuda.h>

#define GQE_REQUIRE_GPU() \
  if (torch::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device"
