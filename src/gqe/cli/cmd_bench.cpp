// gqe bench: GQA vs GQE wall-clock (prefill at four levels, training step, decode); see bench/prefill_bench.h.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "gqe/attention/attention_dtype.h"
#include "gqe/bench/model_decode.h"
#include "gqe/bench/prefill_bench.h"
#include "gqe/bench/read_bandwidth.h"
#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/format.h"
#include "gqe/core/fs.h"
#include "gqe/core/gnuplot.h"
#include "gqe/core/machine.h"
#include "gqe/core/runtime.h"
#include "gqe/kernels/fma_peak.h"

namespace gqe::cli {

int cmd_bench(int argc, char** argv) {
  Args args("bench", argc, argv,
            {"shapes", "levels", "lengths", "repeats", "seconds-per-point", "threads", "out", "train-length",
             "train-levels",
             "decode-lengths", "decode-batches", "prefill-batches", "decode-tokens", "implementation", "device",
             "sdpa-backend", "dtype", "decode-models", "decode-model-batches", "decode-model-context"},
            {"help", "no-prefill", "no-train", "no-decode", "no-plot"});
  if (args.flag("help")) {
    std::cout
        << "usage: gqe bench [options]\n"
           "  GQA vs GQE latency on this machine, batch 1 (see --prefill-batches, --decode-batches), GQA and\n"
           "  GQE runs alternating. Prints a table; writes OUT.json, OUT.csv and\n"
           "  (gnuplot) OUT.png of the prefill speedup vs sequence length.\n"
           "  --shapes paper,small        paper: d 1024, d_h 64, N 16, G 8, k 1; small: d 256, d_h 32, N 8, G 4\n"
           "  --levels core,layer,block   attention core / attention layer / transformer block / model (the\n"
           "                              bench shape's 2-layer LM with its vocab-256 head), prefill;\n"
           "                              --no-prefill to skip\n"
           "  --lengths 1024,2048,4096,8192   prefill lengths\n"
           "  --repeats 5                 timed runs per point after one warm-up (median reported)\n"
           "  --seconds-per-point 20      stop repeating a point after this many timed seconds\n"
           "  --threads N                 intra-op threads (default: all cores)\n"
           "  --train-length 2048         training step (fwd+bwd, 2-layer LM) length; --no-train to skip\n"
           "  --train-levels model        what the training rows run: model (the 2-layer LM and its loss),\n"
           "                              layer, block (one attention layer / block, loss sum(y * probe))\n"
           "  --decode-lengths 1024,4096,16384  KV-cache context for decode tokens/s; --no-decode to skip\n"
           "  --decode-batches 1          sequences per decode step, e.g. 1,4,16 (level layer-bB for B > 1:\n"
           "                              contexts of unequal lengths, spread over L/2..L)\n"
           "  --prefill-batches 1         sequences per prefill call, e.g. 1,4 (level LEVEL-bB for B > 1)\n"
           "  --decode-tokens 16          timed decode tokens per point\n"
           "  --implementation fast       fast | reference (attention.implementation)\n"
           "  --device cpu                cpu (fp32) | cuda[:N] (bf16 autocast; CUDA builds, docs/gpu.md)\n"
           "  --dtype fp32                CPU attention's K/V: fp32 | bf16 | auto (bf16 where the CPU has\n"
           "                              AVX512-BF16), or a list (fp32,bf16) run side by side point by point;\n"
           "                              bf16 rows' levels end in -bf16 (core: bf16 K/V as a bf16 KV cache holds\n"
           "                              them; layer/block/model: K/V rounded inside attention; decode: a bf16\n"
           "                              cache). Weights and projections stay fp32; training rows fp32\n"
           "  --sdpa-backend flash        CUDA: the one SDPA backend of prefill and training rows, GQA and GQE\n"
           "                              alike: flash | cudnn | efficient | math | auto (decode rows: auto)\n"
           "  --decode-models LIST        model configs (configs/paper-gqa-250m.json,..): whole-model decode\n"
           "                              tokens/s (random fp32 weights, greedy), each against the weight-read\n"
           "                              limit (measured read bandwidth / weight bytes a step reads)\n"
           "  --decode-model-batches 1    sequences per step, a list\n"
           "  --decode-model-context 16   prompt tokens before the --decode-tokens timed steps\n"
           "  --out bench/gqe-bench       output prefix\n";
    return 0;
  }
  bench::BenchOptions opt;
  opt.shapes = args.get_enum_list("shapes", opt.shapes);
  opt.levels = args.get_enum_list("levels", opt.levels);
  if (args.flag("no-prefill")) opt.levels.clear();
  opt.lengths = args.get_positive_ints("lengths", opt.lengths);
  opt.decode_lengths = args.get_positive_ints("decode-lengths", opt.decode_lengths);
  opt.decode_batches = args.get_positive_ints("decode-batches", opt.decode_batches);
  opt.prefill_batches = args.get_positive_ints("prefill-batches", opt.prefill_batches);
  opt.repeats = int(args.get_int("repeats", opt.repeats));
  opt.seconds_per_point = args.get_double("seconds-per-point", opt.seconds_per_point);
  opt.train_length = args.get_int("train-length", opt.train_length);
  opt.train_levels = args.get_enum_list("train-levels", opt.train_levels);
  for (const bench::PrefillLevel level : opt.train_levels)
    if (level == bench::PrefillLevel::core)
      throw Error("gqe bench: --train-levels: expected layer, block or model (core has no training row), got 'core'");
  opt.decode_tokens = int(args.get_int("decode-tokens", opt.decode_tokens));
  opt.implementation = args.get_enum("implementation", opt.implementation);
  opt.device = args.get("device", opt.device);
  opt.dtypes.clear();
  for (const AttentionDtype dt : args.get_enum_list("dtype", std::vector<AttentionDtype>{AttentionDtype::fp32})) {
    const bool cpu = opt.device == "cpu";
    if (dt == AttentionDtype::bf16 && !cpu)
      throw Error("--dtype bf16 is for the CPU; on " + opt.device + " the CUDA path runs under bf16 autocast");
    AttentionDtype resolved = AttentionDtype::fp32;
    if (cpu) {
      resolved = resolve_attention_dtype(dt) == at::kBFloat16 ? AttentionDtype::bf16 : AttentionDtype::fp32;
    }
    if (std::find(opt.dtypes.begin(), opt.dtypes.end(), resolved) == opt.dtypes.end()) opt.dtypes.push_back(resolved);
  }
  opt.train = !args.flag("no-train");
  opt.decode = !args.flag("no-decode");
  if (opt.repeats < 1) throw Error("gqe bench: --repeats must be >= 1, got " + std::to_string(opt.repeats));
  if (opt.train_length < 2) throw Error("gqe bench: --train-length must be >= 2");
  if (opt.decode_tokens < 1) throw Error("gqe bench: --decode-tokens must be >= 1");
  const std::string out = args.get("out", "bench/gqe-bench");

  opt.sdpa_backend = args.get("sdpa-backend", opt.sdpa_backend);
  const std::set<std::string> backends = {"flash", "cudnn", "efficient", "math", "auto"};
  if (!backends.count(opt.sdpa_backend))
    throw Error("gqe bench: --sdpa-backend: expected flash, cudnn, efficient, math or auto, got '" + opt.sdpa_backend +
                "'");
  opt.threads = configure_threads(int(args.get_int("threads", 0)));
  const std::string runtime = describe_runtime();
  const double load = load_average_1min();
  nlohmann::json machine = {{"cpu", cpu_model_name()}, {"kernel_isa", kernels::simd_isa_name()},
                            {"threads", opt.threads}, {"load_average_at_start", load}};
  std::string gpu;
  double read_gbs = 0;  // CPU: the memory read bandwidth, the whole-model decode rows' yardstick
  if (opt.device.rfind("cuda", 0) == 0) {
#ifdef GQE_WITH_CUDA
    if (at::hasCUDA()) {
      const at::Device dev(opt.device);
      gpu = bench::gpu_name(dev.has_index() ? dev.index() : 0);
    }
#endif
    // The GPU's attention GFLOP/s against its published bf16 peak, never against the host CPU's FMA peak.
    opt.fma_peak_gflops = bench::published_gpu_peak_gflops(gpu);
    opt.peak_label = "the GPU's published dense bf16 peak";
    machine["gpu"] = gpu;
    machine["gpu_published_bf16_peak_gflops"] = opt.fma_peak_gflops;
  } else {
    opt.fma_peak_gflops = kernels::measure_fma_peak_gflops(opt.threads);
    machine["fma_peak_gflops"] = opt.fma_peak_gflops;
    read_gbs = bench::measure_read_bandwidth_gbs(opt.threads);
    machine["read_bandwidth_gbs"] = read_gbs;
  }
  std::cout << "gqe bench: " << runtime << "\n"
            << "machine: " << cpu_model_name() << ", kernels " << kernels::simd_isa_name() << ", " << opt.threads
            << " threads, " << (gpu.empty() ? "" : "GPU " + gpu + ", ") << (gpu.empty() ? "measured FMA peak " : "published bf16 peak ")
            << fixed_point(opt.fma_peak_gflops, 1) << " GFLOP/s, "
            << (read_gbs > 0 ? "measured read bandwidth " + fixed_point(read_gbs, 1) + " GB/s, " : "")
            << "load average " << fixed_point(load) << "\n";
  if (load > opt.threads + 0.5)
    std::cout << "warning: load average " << fixed_point(load) << " is above the " << opt.threads
              << " threads in use: other work on the machine distorts every figure\n";
  std::cout
            << "ratio = GQA latency / GQE latency (median); limit = GQA/GQE forward FLOPs at that level; "
               "GF/s = causal attention-core GFLOP/s\n";
  std::vector<bench::BenchRow> rows = bench::run_bench(opt, &std::cout);
  std::vector<bench::ModelDecodeRow> model_rows;
  if (args.has("decode-models")) {
    if (opt.device != "cpu") throw Error("gqe bench: --decode-models runs on the CPU only");
    bench::ModelDecodeOptions m;
    m.configs = args.get_list("decode-models");
    m.batches = args.get_positive_ints("decode-model-batches", m.batches);
    m.context = args.get_int("decode-model-context", m.context);
    m.tokens = opt.decode_tokens;
    m.repeats = opt.repeats;
    m.read_bandwidth_gbs = read_gbs;
    m.threads = opt.threads;
    model_rows = bench::run_model_decode(m, &std::cout);
  }

  if (const auto dir = std::filesystem::path(out).parent_path(); !dir.empty()) fs::mkdirs(dir.string());
  const std::string csv = out + ".csv";
  std::string report = bench::rows_to_json(rows, runtime, opt, machine);
  if (!model_rows.empty()) {
    nlohmann::json j = nlohmann::json::parse(report);
    j["model_decode"] = bench::model_decode_json(model_rows);
    report = j.dump(2);
  }
  fs::write_file_atomic(out + ".json", report);
  fs::write_file_atomic(csv, bench::rows_to_csv(rows));
  std::cout << "wrote " << out << ".json, " << csv << "\n";
  if (!args.flag("no-plot")) {
    const std::string script = out + ".gnuplot", png = out + ".png";
    fs::write_file_atomic(script, bench::gnuplot_script(rows, csv, png));
    if (run_gnuplot(script, PlotNeed::kOptional)) std::cout << "wrote " << png << "\n";
  }
  return 0;
}

}  // namespace gqe::cli
