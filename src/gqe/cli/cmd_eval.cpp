// gqe eval: harness-exact zero-shot multiple-choice evaluation (hellaswag, arc_easy, arc_challenge, piqa,
// winogrande, sciq, openbookqa, boolq, copa, commonsense_qa, social_iqa, mmlu), or --val-loss on held-out tokens. gqe routes: routing analytics of a GQE checkpoint.
// The work is in src/gqe/eval/; this file parses options and prints.
#include <unistd.h>

#include <iostream>
#include <sstream>

#include "gqe/cli/args.h"
#include "gqe/cli/device_option.h"
#include "gqe/cli/commands.h"
#include "gqe/core/config.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/model_stats.h"
#include "gqe/core/runtime.h"
#include "gqe/core/sha256.h"
#include "gqe/tokenizers/run_tokenizer.h"
#include "gqe/data/shard_meta.h"
#include "gqe/eval/harness.h"
#include "gqe/eval/progress.h"
#include "gqe/eval/routing.h"
#include "gqe/eval/val_loss.h"
#include "gqe/io/checkpoint.h"

namespace gqe::cli {

namespace {

// N docs, or a fraction below 1 (lm-evaluation-harness's --limit); a finite positive number.
double parse_limit(const Args& args) { return args.get_positive_double("limit", 0); }

// A token shard from `gqe data prepare` must have been written by the tokenizer the checkpoint reads
// text with (--tokenizer, or the run's recorded one, as load_run_tokenizer picks it).
void check_data_tokenizer(const Args& args, const std::string& data, const std::string& dir, int64_t model_vocab) {
  const std::string spec = args.get("tokenizer", "");
  check_shards_tokenizer({data}, spec.empty() ? run_tokenizer_files(dir, model_vocab) : resolve_tokenizer_files(spec));
}

int run_val_loss(const Args& args) {
  const std::string dir = args.require("checkpoint");
  const std::string checkpoint_sha256 = sha256_file(dir + "/model.safetensors");  // as loaded
  auto model = load_model_checkpoint(dir, WeightLoadOptions{args.flag("allow-nonfinite-weights")});
  model->to(device_option(args, args.flag("val-loss") ? "eval --val-loss" : "eval"));
  auto tok = load_run_tokenizer(dir, model->config().vocab_size, args.get("tokenizer", ""));
  const std::string data = args.require("data");
  check_data_tokenizer(args, data, dir, model->config().vocab_size);
  eval::EvalTokens src = eval::load_eval_tokens(data, *tok, args.get_int("max-tokens", 0));
  const int64_t seq = args.get_int("seq", std::min<int64_t>(1024, model->config().max_position_embeddings));
  const int64_t batch = args.get_int("batch-size", 8);
  std::cerr << "gqe eval --val-loss: " << data << " (" << src.kind << ", " << src.tokens.size() << " tokens), seq " << seq
            << ", batch " << batch << "\n";
  eval::ProgressBar bar("val-loss windows", std::cerr, !args.flag("no-progress") && ::isatty(2));
  eval::ValLossResult r = eval::validation_loss(*model, src.tokens, seq, batch, src.text_bytes,
                                                [&](int64_t d, int64_t t) { bar.update(d, t); });
  bar.finish();
  std::cout << "val loss " << r.loss << " nats/token, perplexity " << r.perplexity;
  if (src.text_bytes > 0) std::cout << ", " << r.bits_per_byte << " bits/byte";
  std::cout << " (" << r.predicted_tokens << " predicted tokens in " << r.windows << " windows of " << seq << ")";
  if (model->config().attention.is_gqe()) std::cout << "; aux loss " << r.aux_loss;
  std::cout << "\n";
  if (args.has("out")) {
    nlohmann::ordered_json j = {{"checkpoint", dir},
                                {"checkpoint_sha256", checkpoint_sha256},
                                {"data", data},
                                {"data_kind", src.kind},
                                {"tokenizer", tok->name()},
                                {"seq_len", seq},
                                {"loss", r.loss},
                                {"perplexity", r.perplexity},
                                {"bits_per_byte", src.text_bytes > 0 ? nlohmann::ordered_json(r.bits_per_byte) : nullptr},
                                {"aux_loss", r.aux_loss},
                                {"predicted_tokens", r.predicted_tokens},
                                {"windows", r.windows},
                                {"window_tokens", r.window_tokens},
                                {"window_nats", r.window_nats}};
    fs::write_file_atomic(args.get("out", ""), j.dump(2) + "\n");
    std::cout << "wrote " << args.get("out", "") << "\n";
  }
  return 0;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  Args args("eval", argc, argv,
            {"checkpoint", "task", "data", "data-dir", "labels", "limit", "batch-size", "max-length", "tokenizer", "out",
             "dump-requests", "threads", "seq", "max-tokens", "device", "dtype"},
            {"help", "val-loss", "no-progress", "allow-nonfinite-weights", "shared-contexts", "per-request"});
  if (args.flag("help")) {
    std::cout
        << "usage: gqe eval --checkpoint DIR --task TASK[,TASK...] (--data FILE | --data-dir DIR) [options]\n"
           "       gqe eval --val-loss --checkpoint DIR --data FILE [--seq T] [--batch-size B] [--max-tokens N]\n"
           "Zero-shot multiple choice exactly as lm-evaluation-harness renders and scores it (acc, acc_norm, stderr).\n"
           "  tasks: hellaswag (hellaswag_val.jsonl), arc_easy (ARC-Easy-Test.jsonl), arc_challenge\n"
           "         (ARC-Challenge-Test.jsonl), piqa (valid.jsonl + valid-labels.lst), and in the layout\n"
           "         scripts/install-eval-data.sh installs (data/eval/<task>/<split>.jsonl): winogrande, sciq,\n"
           "         openbookqa, boolq, copa, commonsense_qa, social_iqa, mmlu; see docs/eval.md\n"
           "  --data FILE          the task's file (one task); --data-dir DIR finds the standard names in DIR\n"
           "                       (data/eval after scripts/install-eval-data.sh); a manifest.json there is checked\n"
           "  --labels FILE        piqa labels (default: FILE's name with -labels.lst, when present)\n"
           "  --limit N            first N docs per task (a value below 1: that fraction, rounded up)\n"
           "  --batch-size B (16)  contexts per forward pass (--per-request: requests per pass)\n"
           "  --max-length N (model's max_position_embeddings)\n"
           "  --tokenizer bytes|PATH (default: DIR/tokenizer.model if present, else bytes)\n"
           "  --out FILE (eval_results.json)  results JSON   --dump-requests FILE  every request as a JSON line\n"
           "  --threads N (all cores)  --no-progress  --allow-nonfinite-weights (load NaN/Inf weights anyway)\n"
           "  --per-request        one forward pass per request, as the harness runs them (default: each\n"
           "                       doc's context once, its K/V cache shared by its continuations; same scores)\n"
        << device_option_help() << dtype_option_help()
        << "  --val-loss: loss/perplexity on a token shard (gqe or llm.c .bin) or a text file; --seq T (min(1024, max pos))\n";
    return 0;
  }
  configure_threads(int(args.get_int("threads", 0)));
  apply_dtype_option(args, device_option(args, args.flag("val-loss") ? "eval --val-loss" : "eval"));
  if (args.flag("val-loss")) return run_val_loss(args);

  const std::string dir = args.require("checkpoint");
  const std::vector<std::string> task_names = split_commas(args.require("task"));
  if (task_names.empty()) throw Error("--task is empty");
  for (size_t i = 0; i < task_names.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (task_names[i] == task_names[j])
        throw Error("--task: '" + task_names[i] + "' is named twice (it would count twice in the average)");
  if (args.has("data") && task_names.size() != 1)
    throw Error("--data names one file; for several tasks use --data-dir DIR");
  if (!args.has("data") && !args.has("data-dir")) throw Error("pass --data FILE or --data-dir DIR");
  const double limit = parse_limit(args);

  // Load every task first, so that a malformed file fails before any model time is spent.
  std::vector<eval::TaskData> tasks;
  for (const auto& t : task_names) {
    tasks.push_back(eval::load_task(t, args.get("data", ""), args.get("data-dir", ""), args.get("labels", "")));
    const auto& td = tasks.back();
    std::cerr << td.info.name << ": " << td.docs.size() << " docs from " << td.source << "\n";
    if (!td.info.note.empty()) std::cerr << "note: " << td.info.name << ": " << td.info.note << "\n";
    if (limit <= 0 && int64_t(td.docs.size()) != td.info.full_size)
      std::cerr << "note: the harness scores " << td.info.name << "'s " << td.info.split << " split (" << td.info.full_size
                << " docs); this file has " << td.docs.size() << ", so the numbers are not comparable with published ones\n";
  }

  // The hash of the weights as they are loaded, not as they may be after a long evaluation.
  const std::string checkpoint_sha256 = sha256_file(dir + "/model.safetensors");
  auto model = load_model_checkpoint(dir, WeightLoadOptions{args.flag("allow-nonfinite-weights")});
  model->to(device_option(args, args.flag("val-loss") ? "eval --val-loss" : "eval"));
  auto tok = load_run_tokenizer(dir, model->config().vocab_size, args.get("tokenizer", ""));
  eval::EvalOptions opt;
  opt.limit = limit;
  opt.score.batch_size = args.get_int("batch-size", 16);
  opt.score.max_length = args.get_int("max-length", 0);
  if (args.flag("shared-contexts") && args.flag("per-request"))
    throw Error("--shared-contexts and --per-request: give one (shared contexts are the default)");
  opt.shared_contexts = !args.flag("per-request");
  if (opt.score.batch_size <= 0) throw Error("--batch-size must be positive");
  if (opt.score.max_length < 0) throw Error("--max-length must be positive");
  std::ostringstream dump;
  if (args.has("dump-requests")) opt.dump = &dump;

  std::vector<eval::TaskEvaluation> evals;
  std::vector<eval::TaskResult> results;
  for (const auto& td : tasks) {
    eval::ProgressBar bar(td.info.name + " requests", std::cerr, !args.flag("no-progress") && ::isatty(2));
    opt.progress = [&](int64_t d, int64_t t) { bar.update(d, t); };
    evals.push_back(eval::evaluate_task(*model, *tok, td, opt));
    bar.finish();
    results.push_back(evals.back().result);
    const auto& ev = evals.back();
    std::cerr << td.info.name << ": " << ev.result.n << " docs, " << ev.requests << " requests, " << ev.tokens << " tokens in "
              << ev.seconds << " s (" << (ev.seconds > 0 ? double(ev.result.n) / ev.seconds : 0.0) << " docs/s, "
              << (ev.seconds > 0 ? double(ev.tokens) / ev.seconds : 0.0) << " tokens/s)\n";
    if (evals.back().truncated > 0)
      std::cerr << "note: " << td.info.name << ": " << evals.back().truncated << " requests cut from the left to the max length\n";
  }

  eval::RunInfo run;
  run.checkpoint = dir;
  run.checkpoint_sha256 = checkpoint_sha256;
  run.tokenizer = tok->name();
  run.model_config = nlohmann::ordered_json::parse(model_config_to_json(model->config()));
  run.num_parameters = count_parameters(model->config()).total();
  run.batch_size = opt.score.batch_size;
  run.max_length = opt.score.max_length > 0 ? std::min(opt.score.max_length, model->config().max_position_embeddings)
                                            : model->config().max_position_embeddings;
  run.limit = limit;
  const std::string out = args.get("out", "eval_results.json");
  fs::write_file_atomic(out, eval::results_json(evals, tasks, run).dump(2) + "\n");
  if (args.has("dump-requests")) fs::write_file_atomic(args.get("dump-requests", ""), dump.str());

  std::cout << "gqe (checkpoint=" << dir << ", tokenizer=" << tok->name() << "), limit: "
            << (limit <= 0 ? std::string("None") : limit >= 1 ? std::to_string(int64_t(limit)) : std::to_string(limit)) << ", num_fewshot: 0, batch_size: " << run.batch_size
            << "\n"
            << eval::results_table(results) << "results: " << out << "\n";
  if (args.has("dump-requests")) std::cout << "requests: " << args.get("dump-requests", "") << "\n";
  return 0;
}

int cmd_routes(int argc, char** argv) {
  Args args("routes", argc, argv,
            {"checkpoint", "data", "tokenizer", "seq", "batch-size", "max-tokens", "top-tokens", "min-count", "out", "threads",
             "dump-choices", "device"},
            {"help", "no-plot", "no-progress", "allow-nonfinite-weights"});
  if (args.flag("help")) {
    std::cout << "usage: gqe routes --checkpoint DIR --data FILE [options]\n"
                 "Routing analytics of a GQE checkpoint on a text file or token shard: per layer and group the expert\n"
                 "load, router entropy and aux loss, top-1 agreement across layers, each expert's preferred tokens.\n"
                 "  --seq T (256)  --batch-size B (8)  --max-tokens N (65536; 0 = all)  --tokenizer bytes|PATH\n"
                 "  --top-tokens N (8)  --min-count N (5: tokens seen fewer times are not ranked)\n"
                 "  --out PREFIX (routes): writes PREFIX.json and PREFIX.png (heat map; gnuplot)  --no-plot\n"
                 "  --dump-choices FILE  each position's top-1 expert per layer and group, uint8 [tokens, layers,\n"
                 "                       groups] in data order (compare checkpoints token by token)\n"
                 "  --allow-nonfinite-weights (load NaN/Inf weights anyway)\n"
              << device_option_help();
    return 0;
  }
  configure_threads(int(args.get_int("threads", 0)));
  const std::string dir = args.require("checkpoint");
  auto model = load_model_checkpoint(dir, WeightLoadOptions{args.flag("allow-nonfinite-weights")});
  model->to(device_option(args, "routes"));
  if (!model->config().attention.is_gqe())
    throw Error(dir + " is a '" + to_string(model->config().attention.kind) +
                "' checkpoint; routing analytics need a GQE checkpoint");
  auto tok = load_run_tokenizer(dir, model->config().vocab_size, args.get("tokenizer", ""));
  const std::string data = args.require("data");
  check_data_tokenizer(args, data, dir, model->config().vocab_size);
  eval::EvalTokens src = eval::load_eval_tokens(data, *tok, args.get_int("max-tokens", 65536));
  eval::RouteOptions opt;
  opt.seq_len = args.get_int("seq", std::min<int64_t>(256, model->config().max_position_embeddings));
  opt.batch_size = args.get_int("batch-size", opt.batch_size);
  opt.top_tokens = args.get_int("top-tokens", opt.top_tokens);
  opt.min_count = args.get_int("min-count", opt.min_count);
  opt.keep_choices = args.has("dump-choices");
  eval::ProgressBar bar("routing windows", std::cerr, !args.flag("no-progress") && ::isatty(2));
  eval::RouteStats s = eval::collect_routing(*model, src.tokens, opt, [&](int64_t d, int64_t t) { bar.update(d, t); });
  bar.finish();
  std::cout << "gqe routes: " << dir << " on " << data << " (" << src.kind << ")\n" << eval::format_routing(s, *tok);
  const std::string prefix = args.get("out", "routes");
  nlohmann::ordered_json j = eval::routing_json(s, *tok);
  j["checkpoint"] = dir;
  j["data"] = data;
  j["tokenizer"] = tok->name();
  if (opt.keep_choices) {
    const std::string path = args.require("dump-choices");
    fs::write_file_atomic(path, std::string(s.top1_choice.begin(), s.top1_choice.end()));
    j["choices"] = {{"path", path}, {"dtype", "uint8"}, {"shape", {s.tokens, s.layers, s.groups}}};
  }
  fs::write_file_atomic(prefix + ".json", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  std::cout << "wrote " << prefix << ".json";
  if (!args.flag("no-plot")) {
    if (eval::plot_routing_heatmap(s, prefix + ".png", "expert load: " + dir + " on " + data, PlotNeed::kOptional))
      std::cout << " and " << prefix << ".png";
  }
  std::cout << "\n";
  return 0;
}

}  // namespace gqe::cli
