// gqe info CONFIG / gqe info --schedule / gqe env
#include <iostream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/cli/schedule_flags.h"
#include "gqe/core/config.h"
#include "gqe/core/error.h"
#include "gqe/core/format.h"
#include "gqe/core/machine.h"
#include "gqe/core/model_stats.h"
#include "gqe/core/runtime.h"
#include "gqe/tokenizers/unicode_regex.h"
#include "gqe/kernels/fma_peak.h"
#include "gqe/train/recipe.h"
#include "gqe/train/schedule.h"

namespace gqe::cli {

namespace {

// The learning-rate schedule `gqe train` would follow with the same flags, its phases as one line of JSON: the
// study scripts branch their budgets at the decay start and take it from here rather than re-deriving it.
int print_schedule(const Args& args) {
  if (!args.has("steps")) throw Error("gqe info: --schedule needs --steps T");
  TrainRecipe r;
  r.schedule.total_steps = args.get_int("steps", 0, 1);
  apply_schedule_flags(args, r, false);
  resolve_recipe(r, 1, "command line");  // the warmup default (10% of the steps) and every check, as gqe train
  const ScheduleOptions& s = r.schedule;
  nlohmann::ordered_json j = {{"total_steps", s.total_steps},
                              {"warmup_steps", s.warmup_steps},
                              {"stable_steps", decay_start(s) - s.warmup_steps},
                              {"decay_start", decay_start(s)},
                              {"decay_steps", decay_steps(s)},
                              {"peak_lr", s.peak_lr},
                              {"min_lr", s.min_lr},
                              {"decay_fraction", s.decay_fraction},
                              {"decay_shape", to_string(s.decay_shape)}};
  std::cout << j.dump() << "\n";
  return 0;
}

}  // namespace

int cmd_info(int argc, char** argv) {
  std::set<std::string> schedule_options = schedule_flag_names();
  schedule_options.insert("steps");
  std::set<std::string> options = schedule_options;
  options.insert("context");
  Args args("info", argc, argv, options, {"help", "schedule"}, Positionals::any("CONFIG"));
  const bool schedule = args.flag("schedule");
  if (args.flag("help") || args.positional().size() != (schedule ? 0 : 1)) {
    std::cout << "usage: gqe info CONFIG.json [--context N]\n"
                 "  prints parameter counts by part, W_O slots, active query heads per token and the\n"
                 "  attention FLOPs per token at context length N (default 4096).\n"
                 "usage: gqe info --schedule --steps T [--warmup W] [--decay-fraction F] [--lr X] [--min-lr X]\n"
                 "                [--decay-shape linear|cosine|sqrt]\n"
                 "  prints, as one line of JSON, the phases of the learning-rate schedule gqe train follows with\n"
                 "  the same flags and defaults: total_steps, warmup_steps, stable_steps, decay_start (the first\n"
                 "  step of the decay), decay_steps, peak_lr, min_lr, decay_fraction, decay_shape.\n";
    return args.flag("help") ? 0 : 2;
  }
  if (schedule) {
    if (args.has("context")) throw Error("gqe info: --context is for a CONFIG, not --schedule");
    return print_schedule(args);
  }
  for (const std::string& name : schedule_options)
    if (args.has(name)) throw Error("gqe info: --" + name + " needs --schedule");
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
