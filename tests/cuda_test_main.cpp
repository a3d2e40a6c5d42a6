// main() of test_cuda. With --require-device and no CUDA device it runs nothing and exits 77, which CTest
// reports as "Skipped" (never a silent pass).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cstring>
#include <iostream>

int main(int argc, char** argv) {
  bool require_device = false;
  for (int i = 1; i < argc; ++i) require_device |= std::strcmp(argv[i], "--require-device") == 0;
  if (require_device && torch::cuda::device_count() == 0) {
    std::cout << "test_cuda: no CUDA device on this machine: the GPU tests did not run (skipped)\n";
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
