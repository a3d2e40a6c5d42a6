#include "gqe/core/machine.h"

#include <gtest/gtest.h>

namespace gqe {
namespace {

TEST(Machine, ReadsTheCpuModelAndLoad) {
  // Linux: /proc/cpuinfo names the model (x86 and most other architectures) and /proc/loadavg exists.
  EXPECT_FALSE(cpu_model_name().empty());
  EXPECT_GE(load_average_1min(), 0.0);
}

}  // namespace
}  // namespace gqe
