#include "gqe/experiment/experiment.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "gqe/core/config.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"
#include "gqe/core/model_stats.h"
#include "gqe/core/run_dir.h"
#include "gqe/core/runtime.h"
#include "gqe/experiment/report.h"
#include "gqe/io/checkpoint.h"

namespace gqe {
using nlohmann::json;

namespace {

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("cannot find the gqe executable (/proc/self/exe)");
  buf[n] = 0;
  return buf;
}

// Runs `args` (argv[0] = program) with stdout+stderr appended to `log`, echoing the child's progress
// lines to our stdout as they appear. Returns the exit status.
int run_child(const std::vector<std::string>& args, const std::string& log, const std::string& prefix) {
  {
    std::ofstream l(log, std::ios::app);
    l << "$";
    for (const auto& a : args) l << " " << a;
    l << "\n";
  }
  pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) ::_exit(126);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  std::ifstream tail(log);
  tail.seekg(0, std::ios::end);
  std::string partial;
  auto pump = [&]() {
    std::string chunk;
    char buf[4096];
    while (tail.read(buf, sizeof buf) || tail.gcount() > 0) chunk.append(buf, size_t(tail.gcount()));
    tail.clear();
    partial += chunk;
    size_t nl;
    while ((nl = partial.find('\n')) != std::string::npos) {
      std::cout << prefix << partial.substr(0, nl) << "\n";
      partial.erase(0, nl + 1);
    }
    std::cout.flush();
  };
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    pump();
    if (r == pid) break;
    if (r < 0 && errno != EINTR) throw Error(std::string("waitpid failed: ") + std::strerror(errno));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  pump();
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void run_or_fail(const std::vector<std::string>& args, const std::string& log, const std::string& what) {
  const int rc = run_child(args, log, "    | ");
  if (rc != 0) throw Error(what + " failed (exit " + std::to_string(rc) + "); see " + log);
}

// Median prefill latency (ms) of `model` on `n` random tokens, batch 1.
double time_prefill_ms(LanguageModel& model, int64_t n, int repeats) {
  torch::NoGradGuard g;
  model.eval();
  at::Tensor tok = at::randint(0, model.config().vocab_size, {1, n}, at::TensorOptions(model.device()).dtype(at::kLong));
  model.forward(tok);  // warm-up
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    model.forward(tok);
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void run_benchmark(const ExperimentOptions& o) {
  const std::string path = o.out_dir + "/bench.json";
  if (fs::exists(path)) {
    json old = parse_json(fs::read_file(path, fs::kSmallFileLimit), path);
    if (old.value("lengths", json::array()) == json(o.bench_lengths)) {
      std::cout << "[experiment] benchmark: done earlier (" << path << ")\n";
      return;
    }
  }
  // Time the trained models of the first seed (routing as trained), GQA against GQE.
  const int64_t seed = o.seeds.front();
  auto gqa = load_model_checkpoint(o.out_dir + "/runs/" + experiment_run_name("gqa", seed));
  auto gqe = load_model_checkpoint(o.out_dir + "/runs/" + experiment_run_name("gqe", seed));
  json rows = json::array();
  std::cout << "[experiment] benchmark: prefill latency, batch 1, median of " << o.bench_repeats << " ("
            << describe_runtime() << ")\n";
  for (int64_t n : o.bench_lengths) {
    if (n > gqa->config().max_position_embeddings) continue;
    const double a = time_prefill_ms(*gqa, n, o.bench_repeats), b = time_prefill_ms(*gqe, n, o.bench_repeats);
    std::printf("    n=%6lld  GQA %9.2f ms  GQE %9.2f ms  GQA/GQE %.3f\n", (long long)n, a, b, a / b);
    rows.push_back({{"n", n}, {"gqa_ms", a}, {"gqe_ms", b}, {"speedup", a / b}});
  }
  json out = {{"lengths", o.bench_lengths}, {"repeats", o.bench_repeats}, {"runtime", describe_runtime()},
              {"what", "whole-model prefill forward (no grad), batch 1, trained seed-" + std::to_string(seed) +
                           " checkpoints"},
              {"rows", rows}};
  fs::write_file_atomic(path, out.dump(2) + "\n");
}

}  // namespace

std::string experiment_run_name(const std::string& variant, int64_t seed) {
  return variant + "-seed" + std::to_string(seed);
}

std::string write_variant_config(const std::string& base_config, const std::string& variant, const std::string& path) {
  load_model_config(base_config);  // validates
  json j = parse_json(fs::read_file(base_config, fs::kSmallFileLimit), base_config);
  json& a = j["attention"];
  if (variant == "gqa") {
    a["kind"] = "gqa";
    for (const char* k : {"top_k", "variant", "aux_loss_weight", "router_denominator_eps"}) a.erase(k);
  } else if (enum_from_string<GqeVariant>(variant)) {
    a["kind"] = "gqe";
    a["variant"] = variant;
    if (!a.contains("top_k")) a["top_k"] = 1;
    if (!a.contains("aux_loss_weight")) a["aux_loss_weight"] = 0.01;
  } else {
    throw Error("gqe experiment: unknown variant '" + variant + "' (expected gqa, gqe, hard_concat, weighted_concat)");
  }
  const std::string text = j.dump(2) + "\n";
  parse_model_config(text, path);  // the derived config must be valid too
  fs::write_file_atomic(path, text);
  return path;
}

std::string run_experiment(const ExperimentOptions& o) {
  if (o.base_config.empty() || o.out_dir.empty()) throw Error("gqe experiment: --config and --out are required");
  if (o.data.empty() && o.train_shards.empty()) throw Error("gqe experiment: pass --data FILE or --train-shards LIST");
  if (o.seeds.empty()) throw Error("gqe experiment: --seeds is empty");
  for (const char* v : {"gqa", "gqe"})
    if (std::find(o.variants.begin(), o.variants.end(), v) == o.variants.end())
      throw Error(std::string("gqe experiment: --variants must include ") + v + " (the comparison needs both)");
  const std::string exe = o.gqe_binary.empty() ? self_exe() : o.gqe_binary;
  // One experiment per directory at a time (each run below is locked again by its `gqe train`).
  RunDirLock lock(o.out_dir, "--out");
  if (lock.previous_owner_here())
    for (const std::string& d : {o.out_dir, o.out_dir + "/configs", o.out_dir + "/report"}) remove_stale_temp_files(d);
  fs::mkdirs(o.out_dir + "/configs");
  fs::mkdirs(o.out_dir + "/runs");
  fs::write_file_atomic(o.out_dir + "/experiment.json",
                    json({{"base_config", o.base_config}, {"variants", o.variants}, {"seeds", o.seeds},
                          {"steps", o.steps}, {"batch", o.batch}, {"seq", o.seq}, {"lr", o.lr},
                          {"data", o.data}, {"train_shards", o.train_shards}, {"val_shards", o.val_shards},
                          {"tokenizer", o.tokenizer}, {"eval_dir", o.eval_dir}, {"eval_tasks", o.eval_tasks},
                          {"eval_limit", o.eval_limit}, {"bench_lengths", o.bench_lengths}})
                            .dump(2) + "\n");

  const size_t total = o.variants.size() * o.seeds.size();
  size_t index = 0;
  for (int64_t seed : o.seeds) {
    for (const auto& v : o.variants) {
      ++index;
      const std::string cfg = write_variant_config(o.base_config, v, o.out_dir + "/configs/" + v + ".json");
      const std::string run = o.out_dir + "/runs/" + experiment_run_name(v, seed);
      const std::string tag = "[experiment " + std::to_string(index) + "/" + std::to_string(total) + "] " + v +
                              " seed " + std::to_string(seed);
      const json budget = {{"steps", o.steps}, {"batch", o.batch}, {"seq", o.seq}, {"lr", o.lr}, {"data", o.data},
                           {"train_shards", o.train_shards}};
      if (fs::exists(run + "/DONE.json")) {
        // A finished run is reused only for the same budget: anything else would mix runs in one table.
        json done = parse_json(fs::read_file(run + "/DONE.json", fs::kSmallFileLimit), run + "/DONE.json");
        if (done.value("budget", json()) != budget)
          throw Error(run + ": trained with a different budget (" + done.value("budget", json()).dump() + ", now " +
                      budget.dump() + "); use another --out directory");
        std::cout << tag << ": trained earlier, skipping\n";
      } else {
        fs::mkdirs(run);
        std::cout << tag << ": training" << (fs::exists(run + "/checkpoints") ? " (resuming)" : "") << ", log "
                  << run << "/train.log\n";
        std::vector<std::string> args = {exe, "train", "--config", cfg, "--out", run, "--steps",
                                         std::to_string(o.steps), "--batch", std::to_string(o.batch), "--seq",
                                         std::to_string(o.seq), "--lr", std::to_string(o.lr), "--seed",
                                         std::to_string(seed), "--eval-every", std::to_string(o.eval_every),
                                         "--eval-batches", std::to_string(o.eval_batches), "--save-every",
                                         std::to_string(std::max<int64_t>(1, o.steps / 10)), "--resume", "auto",
                                         "--sample-tokens", "0", "--log-every", std::to_string(std::max<int64_t>(1, o.steps / 10))};
        if (!o.data.empty()) args.insert(args.end(), {"--data", o.data});
        if (!o.train_shards.empty()) args.insert(args.end(), {"--train-shards", o.train_shards});
        if (!o.val_shards.empty()) args.insert(args.end(), {"--val-shards", o.val_shards});
        if (!o.tokenizer.empty()) args.insert(args.end(), {"--tokenizer", o.tokenizer});
        if (o.threads > 0) args.insert(args.end(), {"--threads", std::to_string(o.threads)});
        run_or_fail(args, run + "/train.log", tag + ": training");
        fs::write_file_atomic(run + "/DONE.json", json({{"variant", v}, {"seed", seed}, {"budget", budget}}).dump() + "\n");
      }
      if (!o.eval_dir.empty() && !fs::exists(run + "/eval.json")) {
        std::cout << tag << ": evaluating " << o.eval_tasks << "\n";
        std::vector<std::string> args = {exe, "eval", "--checkpoint", run, "--task", o.eval_tasks, "--data-dir",
                                         o.eval_dir, "--out", run + "/eval.json", "--no-progress"};
        if (o.eval_limit > 0) args.insert(args.end(), {"--limit", std::to_string(o.eval_limit)});
        if (!o.tokenizer.empty()) args.insert(args.end(), {"--tokenizer", o.tokenizer});
        run_or_fail(args, run + "/eval.log", tag + ": evaluation");
      }
      const std::string route_data = !o.data.empty() ? o.data : o.val_shards;
      if (v != "gqa" && !route_data.empty() && !fs::exists(run + "/routes.json")) {
        std::cout << tag << ": routing analytics\n";
        std::vector<std::string> args = {exe, "routes", "--checkpoint", run, "--data", route_data,
                                         "--max-tokens", "16384", "--out", run + "/routes", "--no-progress"};
        if (!o.tokenizer.empty()) args.insert(args.end(), {"--tokenizer", o.tokenizer});
        run_or_fail(args, run + "/routes.log", tag + ": routing analytics");
      }
    }
  }
  run_benchmark(o);
  return write_experiment_report(o);
}

}  // namespace gqe
