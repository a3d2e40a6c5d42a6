#include "gqe/core/memory.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <new>

#include "gqe/core/error.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(Memory, TrainingEstimateCountsWeightsOptimizerAndActivations) {
  ModelConfig c = test::small_config("gqe", 8, 4);
  const MemoryEstimate m = estimate_training_memory(c, 4, 32);
  EXPECT_GT(m.weights, 0);
  EXPECT_DOUBLE_EQ(m.gradients, m.weights);
  EXPECT_DOUBLE_EQ(m.optimizer, 2 * m.weights);
  EXPECT_GT(m.activations, 0);
  // Activations grow with batch x seq; the weights do not.
  const MemoryEstimate big = estimate_training_memory(c, 8, 64);
  EXPECT_DOUBLE_EQ(big.weights, m.weights);
  EXPECT_NEAR(big.activations, 4 * m.activations, 1e-6 * big.activations);
  // A real model's parameter bytes are counted within a few percent (embedding + layers).
  LanguageModel model(c);
  double bytes = 0;
  for (const auto& p : model.parameters()) bytes += double(p.numel()) * 4;
  EXPECT_NEAR(m.weights, bytes, 0.05 * bytes);
}

TEST(Memory, RefusesARunThatCannotFitNamingBothNumbersAndTheOverride) {
  EXPECT_GT(available_memory().bytes, 0);
  ModelConfig c = test::small_config("gqa", 8, 4);
  EXPECT_NO_THROW(check_memory(estimate_training_memory(c, 2, 16), "this training run", "--ignore-memory-check"));
  c.vocab_size = int64_t(1) << 36;  // 2^36 x 32 fp32 weights: 8.8 TB with the optimizer
  try {
    check_memory(estimate_training_memory(c, 2, 16), "this training run", "--ignore-memory-check");
    FAIL() << "accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind("this training run needs about ", 0), 0u) << m;
    EXPECT_NE(m.find(" TB (weights "), std::string::npos) << m;
    EXPECT_NE(m.find(" available ("), std::string::npos) << m;
    EXPECT_NE(m.find("--ignore-memory-check"), std::string::npos) << m;
  }
}

TEST(Memory, AllocationFailuresAreRecognisedAndOtherErrorsAreNot) {
  EXPECT_NE(allocation_failure_message(std::bad_alloc()).find("out of memory"), std::string::npos);
  try {
    at::empty({int64_t(1) << 40, int64_t(1) << 30});  // 2^70 elements: the storage size overflows
    FAIL() << "allocated";
  } catch (const std::exception& e) {
    const std::string m = allocation_failure_message(e);
    EXPECT_EQ(m.rfind("out of memory: ", 0), 0u) << e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  EXPECT_EQ(allocation_failure_message(std::runtime_error("x")), "");
  try {
    at::ones({2}).view({3});
  } catch (const std::exception& e) {
    EXPECT_EQ(allocation_failure_message(e), "");
  }
}

}  // namespace
}  // namespace gqe
