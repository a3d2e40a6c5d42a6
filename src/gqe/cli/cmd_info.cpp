// gqe info CONFIG / gqe env
#include <iostream>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/config.h"
#include "gqe/core/error.h"
#include "gqe/core/model_stats.h"
#include "gqe/core/runtime.h"

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
  std::cout << "matmul 1024x1024 fp32: " << measure_matmul_gflops(1024) << " GFLOP/s with " << threads
            << " threads\n";
  return 0;
}

}  // namespace gqe::cli
