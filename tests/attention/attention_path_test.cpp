// The one dispatch point: which attention path a block's input gets.
#include "gqe/attention/attention_path.h"

#include <gtest/gtest.h>

namespace gqe {
namespace {

TEST(AttentionPath, ChosenFromDeviceDtypeAndConfig) {
  AttentionConfig a;
  EXPECT_STREQ(attention_path_for(a, at::zeros({1})).name(), "cpu");
  EXPECT_STREQ(attention_path_for(a, at::zeros({1}, at::kDouble)).name(), "reference");    // gradient checks
  EXPECT_STREQ(attention_path_for(a, at::zeros({1}, at::kBFloat16)).name(), "reference");  // no bf16 CPU kernels
  a.implementation = AttentionImplementation::reference;
  EXPECT_STREQ(attention_path_for(a, at::zeros({1})).name(), "reference");
}

TEST(AttentionPath, CpuKernelsRefuseOtherDtypesWithTheirName) {
  const AttentionPath& cpu = cpu_attention_path();
  at::Tensor q = at::randn({1, 3, 2, 4}, at::kDouble);
  try {
    cpu.attend(q, q, q, 0);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("flash_attention"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gqe
