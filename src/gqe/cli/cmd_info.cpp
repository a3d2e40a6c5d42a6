// gqe info CONFIG / gqe env
#include <iostream>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/config.h"
#include "gqe/core/error.h"
#include "gqe/core/format.h"
#include "gqe/core/machine.h"
#include "gqe/core/model_stats.h"
#include "gqe/core/runtime.h"
#include "gqe/data/unicode_regex.h"
#include "gqe/kernels/fma_peak.h"

namespace gqe::cli {

int cmd_info(int argc, char** argv) {
  Args args("info", argc, argv, {"context"}, {"help"}, Positionals::any("CONFIG"));
  if (args.flag("help") || args.positional().size() != 1) {
    std::cout << "usage: gqe info CONFIG.json [--context N]\n"
                 "  prints parameter counts by part, W_O slots, active query heads per token and the\n"
                 "  attention FLOPs per token at context length N (default 4096).\n";
    return args.flag("help") ? 0 : 2;
  }
  const int64_t L = args.get_int("context", 4096);
  if (L <= 0) throw Error("gqe info: --context must be positive");
  ModelConfig cfg = load_model_config(args.positional()[0]);
  std::cout << args.positional()[0] << "\n" << describe_model(cfg, L);
  return 0;
}

int cmd_env(int argc, char** argv) {
  Args args("env", argc, argv, {"threads"}, {"help"});
  if (args.flag("help")) {
    std::cout << "usage: gqe env [--threads N]   (N defaults to all cores)\n";
    return 0;
  }
  const int threads = configure_threads(int(args.get_int("threads", 0)));
  std::cout << describe_runtime() << "\n";
  std::cout << "cpu: " << cpu_model_name() << "; gqe's kernels use " << kernels::simd_isa_name()
            << "; load average " << fixed_point(load_average_1min()) << "\n";
  // The Unicode version decides where byte-level BPE pre-tokenizers split text (docs/data.md).
  const RegexLibrary re = regex_library();
  std::cout << "regex (BPE pre-tokenizers): PCRE2 " << re.version << ", Unicode " << re.unicode_version << "\n";
  const double peak = kernels::measure_fma_peak_gflops(threads);
  const double matmul = measure_matmul_gflops(1024);
  std::cout << "FMA peak (measured, " << kernels::simd_isa_name() << "): " << fixed_point(peak, 1)
            << " GFLOP/s with " << threads << " threads\n";
  std::cout << "matmul 1024x1024 fp32 (BLAS): " << fixed_point(matmul, 1) << " GFLOP/s with " << threads
            << " threads, " << fixed_point(100 * matmul / peak, 0) << "% of that peak\n";
  return 0;
}

}  // namespace gqe::cli
