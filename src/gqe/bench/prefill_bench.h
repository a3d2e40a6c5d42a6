// `gqe bench`: GQA vs GQE wall-clock on this machine (CPU, or a CUDA GPU with --device cuda). Prefill latency at four levels (attention core,
// attention layer, transformer block, whole model of the bench shape: 2 layers, vocab 256), a training
// step (forward + backward) and decode with a KV cache. GQA and GQE runs alternate (time_pair).
// A benchmark, not a test: the numbers depend on the machine and on whatever else runs on it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gqe/attention/attention_dtype.h"
#include "gqe/core/config.h"

namespace gqe::bench {

// The model shapes the bench builds (shape_config) and the levels its prefill rows time.
enum class BenchShape { paper, small };
enum class PrefillLevel { core, layer, block, model };

}  // namespace gqe::bench

namespace gqe {
GQE_ENUM_NAMES(bench::BenchShape, "bench shape", {bench::BenchShape::paper, "paper"}, {bench::BenchShape::small, "small"})
GQE_ENUM_NAMES(bench::PrefillLevel, "prefill level", {bench::PrefillLevel::core, "core"},
               {bench::PrefillLevel::layer, "layer"}, {bench::PrefillLevel::block, "block"},
               {bench::PrefillLevel::model, "model"})
}  // namespace gqe

namespace gqe::bench {

struct BenchOptions {
  std::vector<BenchShape> shapes = {BenchShape::paper, BenchShape::small};  // see shape_config()
  std::vector<PrefillLevel> levels = {PrefillLevel::core, PrefillLevel::layer, PrefillLevel::block};
  std::vector<int64_t> lengths = {1024, 2048, 4096, 8192};
  // Sequences per prefill call, all of the same length (level "LEVEL-bB" for B > 1).
  std::vector<int64_t> prefill_batches = {1};
  int repeats = 5;                 // timed runs per point (after one warm-up); fewer when a run is slow
  double seconds_per_point = 20;   // cap on timed seconds per (shape, level, length, model)
  bool train = true;               // training step at train_length
  int64_t train_length = 2048;
  // What a training row runs forward and backward: model = the 2-layer LM with its loss (level "lm-2layer");
  // layer / block = one attention layer / transformer block on a random input, loss = sum(y * probe) plus
  // the weighted aux loss (what a framework around the layer sees of it).
  std::vector<PrefillLevel> train_levels = {PrefillLevel::model};
  bool decode = true;              // decode tokens/s at decode_lengths of context
  std::vector<int64_t> decode_lengths = {1024, 4096, 16384};
  // Sequences decoded together, one step each: level "layer" at 1 (context L), "layer-bB" above (a ragged
  // batch, contexts spread evenly over L/2 .. L).
  std::vector<int64_t> decode_batches = {1};
  int decode_tokens = 16;
  AttentionImplementation implementation = AttentionImplementation::fast;
  // CPU attention's K/V dtype per row, each prefill and decode point run once per entry, side by side
  // (attention/attention_dtype.h; bf16 rows' levels end in "-bf16"): core rows take bf16 K/V, as a bf16 KV
  // cache holds them; layer, block and model rows round K/V to bf16 inside attention; decode rows read a
  // bf16 cache. Training rows stay fp32. fp32 or bf16 only (the command resolves auto).
  std::vector<AttentionDtype> dtypes = {AttentionDtype::fp32};
  // "cpu" (fp32) or "cuda[:N]": CUDA runs under bf16 autocast (core level: bf16 q/k/v) and every timed call
  // ends with a device synchronisation, so wall-clock time covers the GPU work.
  std::string device = "cpu";
  // The peak attention GFLOP/s are reported as a share of, 0 if unknown: on the CPU the measured FMA peak
  // (kernels::measure_fma_peak_gflops), on a GPU its published dense bf16 peak (published_gpu_peak_gflops).
  double fma_peak_gflops = 0;
  std::string peak_label = "the measured FMA peak";
  // CUDA only: the one SDPA backend prefill and training rows may use ("flash", "cudnn", "efficient", "math"
  // or "auto"), so that GQA and GQE run the same kernel; decode rows take what the dispatcher picks (a ragged
  // batch needs a key mask, which the flash kernel does not take). Each row records the backend it ran.
  std::string sdpa_backend = "flash";
  int threads = 1;  // threads in use: a 1-minute load average above this before a point gets a warning
};

// paper: d 1024, d_h 64, N 16, G 8, k 1, SwiGLU 2816; small: d 256, d_h 32, N 8, G 4, k 1, SwiGLU 704.
ModelConfig shape_config(BenchShape shape, AttentionKind kind);

// GQA/GQE ratio of forward FLOPs at prefill length n for a level.
double flop_limit(const ModelConfig& gqa, const ModelConfig& gqe, PrefillLevel level, int64_t n);
// Causal attention-core FLOPs of one layer's prefill: 2*2*heads*d_h*n(n+1)/2.
double attention_core_flops(const ModelConfig& cfg, int64_t n);

struct BenchRow {
  std::string section;  // "prefill" | "train" | "decode"
  std::string shape, level;
  int64_t n = 0;
  double gqa_ms = 0, gqe_ms = 0;  // median latency (train: one step; decode: one token)
  double gqa_min_ms = 0, gqa_max_ms = 0, gqe_min_ms = 0, gqe_max_ms = 0;  // spread of the timed runs
  double ratio = 0;               // gqa_ms / gqe_ms
  double flop_limit = 0;          // GQA/GQE forward FLOP ratio at this level (0 where not defined)
  double gqa_gflops = 0, gqe_gflops = 0;  // attention-core GFLOP/s (prefill core level), else 0
  double gqa_tok_s = 0, gqe_tok_s = 0;    // train / decode (decode: tokens of all sequences of a step)
  int runs = 0;
  double peak_rss_mb = 0;  // process peak RSS after this row
  double load_before = -1;  // 1-minute load average just before this point (-1: unknown)
  std::string backend;      // CUDA: the SDPA backend of GQA's and GQE's attention calls; empty on the CPU
};

// The published dense bf16 tensor-core peak of a GPU by its device name, in GFLOP/s (H100 SXM and H200:
// 989 TFLOP/s; H100 PCIe: 756), 0 for a GPU this table does not know.
double published_gpu_peak_gflops(const std::string& device_name);

#ifdef GQE_WITH_CUDA
// The name of CUDA device `device_index` (bench/cuda/gpu_name.cpp).
std::string gpu_name(int device_index);
#endif

// Runs everything in `opt`, printing rows as they finish to `log` (may be null).
std::vector<BenchRow> run_bench(const BenchOptions& opt, std::ostream* log);

std::string rows_to_csv(const std::vector<BenchRow>& rows);
// `machine`: CPU model, instruction set, FMA peak, threads, load (cmd_bench fills it).
std::string rows_to_json(const std::vector<BenchRow>& rows, const std::string& runtime, const BenchOptions& opt,
                         const nlohmann::json& machine);
// `peak_gflops` > 0 adds attention GFLOP/s as % of it (`peak_label` names it in the header). No rows: the header.
std::string rows_to_table(const std::vector<BenchRow>& rows, double peak_gflops = 0,
                          const std::string& peak_label = "the measured FMA peak");
// gnuplot script plotting the prefill GQA/GQE ratio against n, one line per (shape, level), into png_path.
std::string gnuplot_script(const std::vector<BenchRow>& rows, const std::string& csv_path, const std::string& png_path);

}  // namespace gqe::bench
