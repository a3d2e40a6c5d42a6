// gqe experiment: GQA vs GQE vs both ablations, trained, evaluated, benchmarked and reported.
#include <iostream>
#include <sstream>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/runtime.h"
#include "gqe/experiment/experiment.h"

namespace gqe::cli {


int cmd_experiment(int argc, char** argv) {
  Args args("experiment", argc, argv,
            {"config", "out", "data", "train-shards", "val-shards", "tokenizer", "variants", "seeds", "steps", "batch",
             "seq", "lr", "eval-every", "eval-batches", "eval-dir", "eval-tasks", "eval-limit", "bench-lengths",
             "bench-repeats", "threads"},
            {"help", "quick", "report-only"});
  if (args.flag("help")) {
    std::cout << "usage: gqe experiment --config BASE.json --out DIR (--data TEXT | --train-shards L --val-shards L) [options]\n"
                 "Trains GQA, GQE, hard_concat and weighted_concat with identical data order, seeds, batch and schedule,\n"
                 "evaluates them, benchmarks prefill GQA vs GQE and writes DIR/report/ (README.md, PNGs, results.json).\n"
                 "Resumable: re-running skips finished runs and resumes interrupted ones.\n"
                 "  --quick                 one seed, a small budget (the README's main job: ~10 min on 2 cores)\n"
                 "  --seeds 1,2,3 (1 with --quick)   --variants gqa,gqe,hard_concat,weighted_concat\n"
                 "  --steps N (600; 150 quick)  --batch B (16; 8 quick)  --seq T (128)  --lr X (3e-3)\n"
                 "  --eval-every N  --eval-batches N (8)\n"
                 "  --eval-dir DIR          task files (docs/eval.md); --eval-tasks hellaswag,arc_easy,piqa  --eval-limit N\n"
                 "  --bench-lengths 256,512,1024 (quick) | 256,...,2048  --bench-repeats N (3)\n"
                 "  --tokenizer PATH        with shards  --threads N (all cores)  --report-only (rewrite the report)\n";
    return 0;
  }
  configure_threads(int(args.get_int("threads", 0)));
  ExperimentOptions o;
  const bool quick = args.flag("quick");
  o.base_config = args.require("config");
  o.out_dir = args.require("out");
  o.data = args.get("data", "");
  o.train_shards = args.get("train-shards", "");
  o.val_shards = args.get("val-shards", "");
  o.tokenizer = args.get("tokenizer", "");
  o.variants = args.get_list("variants", o.variants);
  o.seeds = args.get_positive_ints("seeds", quick ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 2, 3});
  o.steps = args.get_int("steps", quick ? 150 : 600);
  o.batch = args.get_int("batch", quick ? 8 : 16);
  o.seq = args.get_int("seq", 128);
  o.lr = args.get_double("lr", 3e-3);
  o.eval_every = args.get_int("eval-every", std::max<int64_t>(1, o.steps / 6));
  o.eval_batches = args.get_int("eval-batches", 8);
  o.eval_dir = args.get("eval-dir", "");
  o.eval_tasks = args.get("eval-tasks", o.eval_tasks);
  o.eval_limit = args.get_double("eval-limit", 0, 0.0);
  o.bench_lengths = args.get_positive_ints(
      "bench-lengths", quick ? std::vector<int64_t>{256, 512, 1024} : std::vector<int64_t>{256, 512, 1024, 2048});
  o.bench_repeats = int(args.get_int("bench-repeats", 3));
  o.threads = int(args.get_int("threads", 0));
  if (o.steps <= 0 || o.batch <= 0 || o.seq <= 0) throw Error("gqe experiment: --steps, --batch, --seq must be positive");
  const std::string report = args.flag("report-only") ? write_experiment_report(o) : run_experiment(o);
  std::cout << "[experiment] report: " << report << "\n";
  return 0;
}

}  // namespace gqe::cli
