// gqe bench's bookkeeping (the timings themselves are benchmarks, not tests): FLOP limits, the peak its
// GFLOP/s are a share of (a GPU's published bf16 peak, never the host CPU's FMA peak), and the SDPA backend
// a CUDA row records.
#include "gqe/bench/prefill_bench.h"

#include <gtest/gtest.h>

namespace gqe {
namespace {

TEST(BenchPeak, GpusByNameAndUnknownOnesHaveNone) {
  EXPECT_DOUBLE_EQ(bench::published_gpu_peak_gflops("NVIDIA H100 80GB HBM3"), 989e3);
  EXPECT_DOUBLE_EQ(bench::published_gpu_peak_gflops("NVIDIA H200"), 989e3);
  EXPECT_DOUBLE_EQ(bench::published_gpu_peak_gflops("NVIDIA H100 PCIe"), 756e3);
  EXPECT_DOUBLE_EQ(bench::published_gpu_peak_gflops("NVIDIA GeForce RTX 4090"), 0);
  EXPECT_DOUBLE_EQ(bench::published_gpu_peak_gflops(""), 0);
}

TEST(BenchTable, NamesThePeakItsSharesAreOfAndTheBackend) {
  bench::BenchRow r;
  r.section = "prefill", r.shape = "paper", r.level = "core", r.n = 4096;
  r.gqa_ms = 2, r.gqe_ms = 1, r.ratio = 2, r.gqa_gflops = 494.5e3, r.gqe_gflops = 400e3;
  r.backend = "GQA flash_attention, GQE flash_attention (one call)";
  const std::string header = bench::rows_to_table({}, 989e3, "the GPU's published dense bf16 peak");
  EXPECT_NE(header.find("% of the GPU's published dense bf16 peak, 989000.0 GFLOP/s"), std::string::npos) << header;
  const std::string row = bench::rows_to_table({r}, 989e3, "the GPU's published dense bf16 peak");
  EXPECT_NE(row.find("494500.0 (50%)"), std::string::npos) << row;
  EXPECT_NE(row.find("SDPA backend: GQA flash_attention, GQE flash_attention (one call)"), std::string::npos) << row;
  EXPECT_NE(bench::rows_to_csv({r}).find(",GQA flash_attention, GQE"), std::string::npos);
  EXPECT_EQ(bench::rows_to_table({}, 0).find("GF/s in parentheses"), std::string::npos);
}

TEST(BenchLimits, GqeCoreLimitIsNineSixteenthsOfGqa) {
  const ModelConfig gqa = bench::shape_config(bench::BenchShape::paper, AttentionKind::gqa);
  const ModelConfig gqe = bench::shape_config(bench::BenchShape::paper, AttentionKind::gqe);
  EXPECT_NEAR(bench::flop_limit(gqa, gqe, bench::PrefillLevel::core, 4096), 16.0 / 9.0, 1e-12);
  EXPECT_LT(bench::flop_limit(gqa, gqe, bench::PrefillLevel::block, 4096),
            bench::flop_limit(gqa, gqe, bench::PrefillLevel::layer, 4096));
}

}  // namespace
}  // namespace gqe
