// `gqe experiment`: the paper's comparison (GQA vs GQE vs both ablations) at the scale the machine
// affords. Each run is a child `gqe train` process (its own run directory, resumable with
// --resume auto); evaluation and routing analytics are child `gqe eval` / `gqe routes` processes; the
// prefill benchmark times the trained configs in-process. Everything in the report is computed from the
// files the runs wrote (metrics.jsonl, eval JSON, bench JSON); nothing is typed by hand.
//
// Layout of OUT/:
//   configs/<variant>.json            the four model configs (from the base config)
//   runs/<variant>-seed<S>/           a `gqe train` run dir (+ train.log, DONE.json when finished,
//                                     eval.json, routes.json/.png for GQE variants)
//   bench.json                        prefill latency GQA vs GQE per length
//   report/README.md, report/*.png, report/results.json
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gqe {

struct ExperimentOptions {
  std::string base_config;           // a GQE or GQA config; the variants differ only in attention.kind/variant
  std::string out_dir;
  std::vector<std::string> variants = {"gqa", "gqe", "hard_concat", "weighted_concat"};
  std::vector<int64_t> seeds = {1, 2, 3};
  // data: a text file (byte tokens) or token shards (+ tokenizer)
  std::string data, train_shards, val_shards, tokenizer;
  // the budget: the same for every run
  int64_t steps = 300, batch = 16, seq = 128;
  double lr = 3e-3;
  int64_t eval_every = 50, eval_batches = 8;
  int threads = 0;
  // evaluation
  std::string eval_dir;              // directory with the task files (docs/eval.md); "" = skip
  std::string eval_tasks = "hellaswag,arc_easy,piqa";
  double eval_limit = 0;             // 0 = all documents
  // benchmark
  std::vector<int64_t> bench_lengths = {256, 512, 1024, 2048};
  int bench_repeats = 3;
  std::string gqe_binary;            // the gqe executable to run children with (default: this process)
};

// Runs what is not finished yet, then writes the report. Returns the report path.
std::string run_experiment(const ExperimentOptions& opt);

// The pieces, exposed for tests.
std::string experiment_run_name(const std::string& variant, int64_t seed);
std::string write_variant_config(const std::string& base_config, const std::string& variant, const std::string& path);
std::string write_experiment_report(const ExperimentOptions& opt);

}  // namespace gqe
