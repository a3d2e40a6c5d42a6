#include "gqe/kernels/fma_peak.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "gqe/kernels/simd.h"

namespace gqe::kernels {
namespace {

TEST(FmaPeak, NamesTheCompiledInstructionSet) {
  const std::string isa = simd_isa_name();
  // The vector width simd.h compiled for and the name must agree.
  if (isa == "avx512") {
    EXPECT_EQ(simd::kW, 16);
  } else if (isa == "avx2+fma") {
    EXPECT_EQ(simd::kW, 8);
  } else {
    EXPECT_EQ(isa, "scalar");
    EXPECT_EQ(simd::kW, 1);
  }
}

TEST(FmaPeak, MeasuresAPlausibleRate) {
  const double one = measure_fma_peak_gflops(1);
  EXPECT_TRUE(std::isfinite(one));
  // One core of any machine this runs on: more than 0.1 GFLOP/s, less than 1 TFLOP/s.
  EXPECT_GT(one, 0.1);
  EXPECT_LT(one, 1000);
}

}  // namespace
}  // namespace gqe::kernels
