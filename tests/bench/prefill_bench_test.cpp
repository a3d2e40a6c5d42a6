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

// A value wider than its column (a long model run at 16k tokens) stays apart from its neighbours, and the rows
// line up with the header.
TEST(BenchTable, WideValuesNeverRunIntoTheNextColumn) {
  bench::BenchRow r;
  r.section = "prefill", r.shape = "paper", r.level = "model", r.n = 16384, r.runs = 3;
  r.gqa_ms = 123456.78, r.gqa_min_ms = 123000.5, r.gqa_max_ms = 130000.25;
  r.gqe_ms = 98765.43, r.gqe_min_ms = 98000.5, r.gqe_max_ms = 99999.75;
  r.ratio = 1.25, r.gqa_tok_s = 1234567.8, r.gqe_tok_s = 2345678.9, r.peak_rss_mb = 123456;
  const std::string row = bench::rows_to_table({r});
  EXPECT_NE(row.find(" 16384 123456.78 (123000.50..130000.25) 98765.43"), std::string::npos) << row;
  EXPECT_NE(row.find(" 1234567.8 2345678.9 "), std::string::npos) << row;
  // A row whose values fit puts each column's last character where the header's is.
  r.gqa_ms = 2, r.gqa_min_ms = 1, r.gqa_max_ms = 3, r.gqa_tok_s = 0, r.gqe_tok_s = 0, r.peak_rss_mb = 12;
  r.gqe_ms = 1, r.gqe_min_ms = 1, r.gqe_max_ms = 1;
  const std::string header = bench::rows_to_table({});
  const std::string fitted = bench::rows_to_table({r});
  EXPECT_EQ(header.find('\n'), fitted.find('\n')) << header << fitted;
}

TEST(BenchLimits, GqeCoreLimitIsNineSixteenthsOfGqa) {
  const ModelConfig gqa = bench::shape_config(bench::BenchShape::paper, AttentionKind::gqa);
  const ModelConfig gqe = bench::shape_config(bench::BenchShape::paper, AttentionKind::gqe);
  EXPECT_NEAR(bench::flop_limit(gqa, gqe, bench::PrefillLevel::core, 4096), 16.0 / 9.0, 1e-12);
  EXPECT_LT(bench::flop_limit(gqa, gqe, bench::PrefillLevel::block, 4096),
            bench::flop_limit(gqa, gqe, bench::PrefillLevel::layer, 4096));
}

// Each training level gives one row that ran forward and backward for both models (timings not checked).
TEST(BenchTrain, OneRowPerTrainingLevel) {
  bench::BenchOptions opt;
  opt.shapes = {bench::BenchShape::small};
  opt.levels = {};
  opt.decode = false;
  opt.train_length = 16;
  opt.train_levels = {bench::PrefillLevel::layer, bench::PrefillLevel::block, bench::PrefillLevel::model};
  opt.repeats = 1;
  const std::vector<bench::BenchRow> rows = bench::run_bench(opt, nullptr);
  ASSERT_EQ(rows.size(), 3u);
  const char* levels[] = {"layer", "block", "lm-2layer"};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].section, "train");
    EXPECT_EQ(rows[i].level, levels[i]);
    EXPECT_EQ(rows[i].n, 16);
    EXPECT_GT(rows[i].gqa_ms, 0);
    EXPECT_GT(rows[i].gqe_ms, 0);
  }
}

}  // namespace
}  // namespace gqe
