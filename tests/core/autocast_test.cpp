// The autocast scope (core/autocast.h) switches CUDA autocast on and back off with either libtorch API.
#include "gqe/core/autocast.h"

#include <gtest/gtest.h>

namespace gqe {
namespace {

TEST(CudaAutocastScope, TurnsCudaAutocastOnAndOff) {
  EXPECT_FALSE(cuda_autocast_enabled());
  {
    CudaAutocastScope on(true);
    EXPECT_TRUE(cuda_autocast_enabled());
    EXPECT_EQ(cuda_autocast_dtype(), at::kBFloat16);
  }
  EXPECT_FALSE(cuda_autocast_enabled());
  {
    CudaAutocastScope off(false);
    EXPECT_FALSE(cuda_autocast_enabled());
  }
}

}  // namespace
}  // namespace gqe
