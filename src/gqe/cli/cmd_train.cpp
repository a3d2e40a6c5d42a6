// gqe train: language-model training with the paper's recipe (src/gqe/train/), on a text file (byte
// tokens) or token shards, in one process or data-parallel over several (torchrun-style environment).
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <thread>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "gqe/cli/args.h"
#include "gqe/cli/device_option.h"
#include "gqe/cli/commands.h"
#include "gqe/core/config.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/memory.h"
#include "gqe/core/model_stats.h"
#include "gqe/core/run_dir.h"
#include "gqe/core/runtime.h"
#include "gqe/core/stop_signals.h"
#include "gqe/data/content_identity.h"
#include "gqe/data/run_tokenizer.h"
#include "gqe/data/shard.h"
#include "gqe/data/shard_meta.h"
#include "gqe/data/stream_decoder.h"
#include "gqe/data/tokenizer.h"
#include "gqe/distributed/communicator.h"
#include "gqe/generate/generate.h"
#include "gqe/train/recipe.h"
#include "gqe/train/train_checkpoint.h"
#include "gqe/train/token_source.h"
#include "gqe/train/trainer.h"

namespace gqe::cli {

namespace {

// `j` flattened into fields "prefix.key.subkey" -> compact JSON value, in the object's order.
void flatten_into(JobFingerprint& out, const std::string& prefix, const nlohmann::json& j) {
  if (!j.is_object()) {
    out.emplace_back(prefix, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  for (const auto& [k, v] : j.items()) flatten_into(out, prefix + "." + k, v);
}

// What names data files across hosts: their names (not folders: mounts differ) and sizes. Their contents
// are compared as data_sha256 (data/content_identity.h).
std::string files_identity(const std::vector<std::string>& paths) {
  uint64_t bytes = 0;
  for (const auto& p : paths) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(p, ec);
    if (!ec) bytes += n;
  }
  const auto name = [](const std::string& p) { return std::filesystem::path(p).filename().string(); };
  if (paths.size() == 1) return name(paths[0]) + " (" + std::to_string(bytes) + " bytes)";
  return std::to_string(paths.size()) + " files " + (paths.empty() ? "" : name(paths.front()) + " .. " + name(paths.back())) +
         " (" + std::to_string(bytes) + " bytes)";
}
// What a resumed run must share with its checkpoint (Trainer::resume): the ranks' fingerprint without
// what may change when a run is continued: its length, the save / evaluation / log cadence, the per-rank
// batch (resume checks the batch over all ranks itself, so the world size may change) and the kernels.
JobFingerprint resume_identity(const JobFingerprint& ranks) {
  static const std::set<std::string> may_change = {
      "recipe.steps",       "recipe.log_every",       "recipe.eval_every", "recipe.eval_batches",
      "recipe.save_every",  "recipe.keep_checkpoints", "recipe.micro_batch", "model.attention.implementation",
      "run.resume"};
  JobFingerprint out;
  for (const auto& f : ranks)
    if (!may_change.count(f.first)) out.push_back(f);
  return out;
}

const char* kHelp =
    "usage: gqe train --config MODEL.json (--data TEXT_FILE | --train-shards GLOB[,..]) --out DIR [options]\n"
    "data:\n"
    "  --data FILE            a text file, encoded with --tokenizer (bytes); the last 5% is validation\n"
    "  --train-shards LIST    token shards (gqe or llm.c .bin); comma-separated paths or globs\n"
    "  --val-shards LIST      validation shards (default: none, or the text tail with --data)\n"
    "  --train-tokens N       train on the shards' first N tokens only (a data-limited run: each epoch\n"
    "                         repeats them; default: all)\n"
    "  --tokenizer PATH       bytes, a SentencePiece .model, a Hugging Face tokenizer.json or GPT-2's\n"
    "                         vocab.json + merges.txt: encodes --data, is recorded in DIR for generate/eval\n"
    "                         (default: bytes with --data, the shards' meta.json tokenizer with shards)\n"
    "recipe (defaults, then --recipe FILE, then these flags; see docs/training.md):\n"
    "  --recipe FILE          configs/recipe-*.json\n"
    "  --steps N (300)  --tokens N (total tokens instead of steps)\n"
    "  --batch B (16, sequences per rank per micro-step)  --seq T (128)\n"
    "  --global-batch TOKENS  tokens per optimizer step over all ranks (gradient accumulation)\n"
    "  --lr X (3e-3 peak)  --min-lr X (lr/10)  --warmup N (10% of steps)  --decay-fraction X (0.2)\n"
    "  --decay-shape linear|cosine|sqrt  --weight-decay X (0.1)  --clip X (absolute norm cap, 0 = none)\n"
    "  --no-zclip  --loss-spike-z X (6; 0 = off)  --precision auto|fp32|bf16  --seed N (1234)\n"
    "  --data-seed N (the data order's own seed; default: --seed, which then sets both)\n"
    "run:\n"
    "  --log-every N (10)  --eval-every N (100)  --eval-batches N (4)  --save-every N (0: at the end)\n"
    "  --keep K (3 checkpoints)  --resume DIR|auto  --stop-at N (stop after step N; resume later)\n"
    "  --overwrite            start over in an --out that holds a run: deletes its checkpoints, metrics,\n"
    "                         model and recorded tokenizer first (without it, such an --out is refused)\n"
    "  --allow-nonfinite-weights (resume from NaN/Inf weights anyway)\n"
    "  --ignore-memory-check (train even when the memory estimate exceeds what is available)\n"
    "  --threads N (cores / local ranks)  --device cpu|cuda  --dist-timeout SECONDS (300)\n"
    "  --sample-tokens N (200)  --sample-prompt TEXT (\"And God said\")\n"
    "distributed: set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (torchrun does), e.g.\n"
    "  torchrun --no-python --nproc-per-node=2 gqe train ...   (rank 0 writes logs and checkpoints)\n"
    "Writes DIR/metrics.jsonl, DIR/checkpoints/step-*/ (resumable) and DIR/config.json + model.safetensors.\n"
    "SIGTERM or SIGINT: the step in progress is finished and checkpointed on all ranks, then the run exits\n"
    "with 128 + the signal (143, 130) and says how to resume; another signal a second or more later exits\n"
    "at once (the last complete checkpoint stays).\n";

}  // namespace

int cmd_train(int argc, char** argv) {
  Args args("train", argc, argv,
            {"config", "data", "train-shards", "val-shards", "train-tokens", "tokenizer", "out", "recipe", "steps", "tokens", "batch",
             "seq", "global-batch", "lr", "min-lr", "warmup", "decay-fraction", "decay-shape", "weight-decay", "clip",
             "loss-spike-z", "precision", "seed", "data-seed", "threads", "log-every", "eval-every", "eval-batches", "save-every",
             "keep", "resume", "stop-at", "device", "dist-timeout", "sample-tokens", "sample-prompt"},
            {"help", "no-zclip", "allow-nonfinite-weights", "ignore-memory-check", "overwrite"});
  if (args.flag("help")) {
    std::cout << kHelp;
    return 0;
  }
  DistEnv env = dist_env_from_environment();
  int threads_req = int(args.get_int("threads", 0));
  if (threads_req <= 0 && env.world_size > 1) {
    // Ranks sharing a host share its cores (torchrun sets LOCAL_WORLD_SIZE).
    const char* lws = std::getenv("LOCAL_WORLD_SIZE");
    const int local = lws ? std::max(1, std::atoi(lws)) : env.world_size;
    threads_req = std::max(1, int(std::thread::hardware_concurrency()) / local);
  }
  const int threads = configure_threads(threads_req);
  const bool main_rank = env.rank == 0;
  std::ostream* log = main_rank ? &std::cout : nullptr;

  const std::string config_path = args.require("config");
  ModelConfig cfg = load_model_config(config_path);

  // Recipe: defaults < --recipe file < flags.
  TrainRecipe r;
  std::string source = "command line";
  if (args.has("recipe")) {
    r = load_recipe(args.require("recipe"));
    source = args.require("recipe") + " + command line";
  }
  if (args.has("steps")) {
    r.schedule.total_steps = args.get_int("steps", 0);
    r.total_tokens = 0;
  }
  // A token budget whose step count fits an int64 many times over (1e15 tokens is ~1000 times the paper's run).
  if (args.has("tokens")) r.total_tokens = args.get_positive_double("tokens", 0, 1e15);
  r.micro_batch = args.get_int("batch", r.micro_batch);
  r.seq_len = args.get_int("seq", r.seq_len);
  r.global_batch_tokens = args.get_int("global-batch", r.global_batch_tokens);
  r.schedule.peak_lr = args.get_double("lr", r.schedule.peak_lr);
  if (args.has("min-lr")) r.schedule.min_lr = args.get_double("min-lr", 0);
  else if (args.has("lr") && !args.has("recipe")) r.schedule.min_lr = r.schedule.peak_lr / 10;
  if (args.has("warmup")) {
    r.schedule.warmup_steps = args.get_int("warmup", 0, 0);
    r.warmup_tokens = -1;
  }
  r.schedule.decay_fraction = args.get_double("decay-fraction", r.schedule.decay_fraction);
  r.schedule.decay_shape = args.get("decay-shape", r.schedule.decay_shape);
  r.adamw.weight_decay = args.get_double("weight-decay", r.adamw.weight_decay);
  r.zclip.max_norm = args.get_double("clip", r.zclip.max_norm);
  if (args.flag("no-zclip")) r.zclip.enabled = false;
  r.loss_spike_z = args.get_double("loss-spike-z", r.loss_spike_z);
  r.precision = args.get("precision", r.precision);
  r.seed = uint64_t(args.get_int("seed", int64_t(r.seed)));
  r.data_seed = args.get_int("data-seed", r.data_seed, 0);
  r.log_every = args.get_int("log-every", r.log_every);
  r.eval_every = args.get_int("eval-every", r.eval_every);
  r.eval_batches = args.get_int("eval-batches", r.eval_batches);
  r.save_every = args.get_int("save-every", r.save_every);
  r.keep_checkpoints = args.get_int("keep", r.keep_checkpoints);
  resolve_recipe(r, env.world_size, source);
  if (r.seq_len > cfg.max_position_embeddings)
    throw ConfigError(config_path + ": field 'max_position_embeddings': " + std::to_string(cfg.max_position_embeddings) +
                      " is shorter than the training seq_len " + std::to_string(r.seq_len));
  // Before anything is allocated. Host memory only: a CUDA run keeps its model on the device.
  if (!args.flag("ignore-memory-check") && args.get("device", "cpu").rfind("cuda", 0) != 0)
    check_memory(estimate_training_memory(cfg, r.micro_batch, r.seq_len), "this training run", "--ignore-memory-check");

  // The run directory belongs to this process from here on (rank 0 writes it): a second run on it stops
  // here, before touching anything; then what dead writers left behind is removed.
  const std::string out = args.require("out");
  std::optional<RunDirLock> out_lock;
  const bool overwrite = args.flag("overwrite");
  if (overwrite && args.has("resume"))
    throw Error("gqe train: --overwrite starts over and --resume continues: give one of them");
  if (main_rank) {
    out_lock.emplace(out, "--out");
    // A run there is continued (--resume) or deliberately replaced (--overwrite), never overwritten by
    // accident: its metrics would be truncated and its checkpoints mixed with the new run's.
    const std::vector<std::string> previous = previous_run_outputs(out);
    if (!previous.empty() && !args.has("resume") && !overwrite) {
      std::string names;
      for (const auto& n : previous) names += (names.empty() ? "" : ", ") + n;
      throw Error("gqe train: --out " + out + " already holds a run (" + names + "); continue it with --resume " +
                  out + ", or start over with --overwrite (deletes that run's checkpoints, metrics and model)");
    }
    if (out_lock->previous_owner_here())
      for (const std::string& d : {out, out + "/checkpoints"})
        for (const std::string& n : remove_stale_temp_files(d))
          *log << "removed " << d << "/" << n << " (left behind by a process that no longer runs)\n";
  }

  // The tokenizer encodes --data text (bytes by default), decodes the final sample and travels with the
  // run (record_run_tokenizer: generate, eval and routes pick it up). gqe shards name theirs in meta.json.
  std::unique_ptr<Tokenizer> tok;
  TokenizerFiles tok_files;
  std::string tok_spec = args.get("tokenizer", args.has("data") ? "bytes" : "");
  if (tok_spec.empty() && args.has("train-shards")) {
    std::string missing;
    tok_spec = tokenizer_of_shards(resolve_shard_paths(args.require("train-shards")), &missing);
    if (!tok_spec.empty() && env.rank == 0) std::cout << "tokenizer " << tok_spec << " (from the shards' meta.json)\n";
    if (!missing.empty() && env.rank == 0)
      std::cerr << "warning: the shards' meta.json names the tokenizer " << missing
                << ", which is not there: this run records no tokenizer (generate, eval and routes will ask for "
                   "one); pass --tokenizer PATH to record it\n";
  }
  if (!tok_spec.empty()) {
    tok_files = resolve_tokenizer_files(tok_spec);
    tok = load_tokenizer(tok_files);
    if (tok->vocab_size() > cfg.vocab_size)
      throw ConfigError(config_path + ": field 'vocab_size': " + std::to_string(cfg.vocab_size) +
                        " is smaller than the tokenizer's " + std::to_string(tok->vocab_size()) + " (" + tok_spec + ")");
  }

  // The final sample's prompt must fit the context: found now, not after training.
  if (tok && args.get_int("sample-tokens", 200) > 0) {
    const std::string prompt = args.get("sample-prompt", "And God said");
    const size_t n = tok->encode(prompt).size();
    if (max_new_tokens_after(cfg, int64_t(n)) < 1)
      throw Error("gqe train: --sample-prompt is " + std::to_string(n) + " tokens, longer than the model's context of " +
                  std::to_string(cfg.max_position_embeddings) + " tokens (max_position_embeddings)");
  }

  // Data: this rank's slice of the training stream; validation as a fresh source per evaluation.
  std::unique_ptr<TokenSource> train;
  ValSourceFactory make_val;
  const int rank = env.rank, world = env.world_size;
  const int64_t T = r.seq_len, B = r.micro_batch;
  if (args.has("data") == args.has("train-shards"))
    throw Error("gqe train: give exactly one of --data TEXT_FILE or --train-shards LIST");
  std::vector<std::string> train_files, val_files;  // for the ranks' fingerprint
  const int64_t train_tokens_limit = args.get_int("train-tokens", 0, 1);
  if (train_tokens_limit > 0 && !args.has("train-shards"))
    throw Error("--train-tokens limits --train-shards; with --data, cut the text file instead");
  if (args.has("data")) {
    const std::string path = args.require("data");
    train_files = {path};
    auto tokens = tok->encode(fs::read_file(path));
    const size_t n_val = args.has("val-shards") ? 0 : size_t(double(tokens.size()) * 0.05);
    auto train_tokens = std::make_shared<const std::vector<int64_t>>(tokens.begin(), tokens.end() - long(n_val));
    auto val_tokens = std::make_shared<const std::vector<int64_t>>(tokens.end() - long(n_val), tokens.end());
    train = std::make_unique<TextTokenSource>(train_tokens, T, B, r.data_order_seed(), rank, world, path);
    // Validation windows in a fixed order, independent of the training seed.
    if (n_val > size_t(T) && int64_t(n_val - 1) / T >= B * world)
      make_val = [=] { return std::make_unique<TextTokenSource>(val_tokens, T, B, 0, rank, world, path + " (validation tail)"); };
    else if (log && r.eval_batches > 0)
      *log << "note: the 5% validation tail of " << path << " is too short for one batch; no validation loss\n";
  } else {
    auto shards = resolve_shard_paths(args.require("train-shards"));
    // Before the shards are read: ids from another tokenizer would train without any error.
    if (tok) check_shards_tokenizer(shards, tok_files, main_rank ? &std::cerr : nullptr);
    train_files = shards;
    train = make_shard_source(shards, T, B, r.data_order_seed(), rank, world, train_tokens_limit);
  }
  if (args.has("val-shards")) {
    auto vs = resolve_shard_paths(args.require("val-shards"));
    if (tok) check_shards_tokenizer(vs, tok_files, main_rank ? &std::cerr : nullptr);
    val_files = vs;
    make_shard_source(vs, T, B, 0, rank, world)->check_token_ids(cfg.vocab_size);  // now, not at the first evaluation
    make_val = [=] { return make_shard_source(vs, T, B, 0, rank, world); };
  }

  if (tok && train->vocab_size() > 0 && train->vocab_size() != tok->vocab_size())
    throw ConfigError("the training shards were written by a tokenizer of " + std::to_string(train->vocab_size()) +
                      " ids (" + train->describe() + "), the tokenizer '" + tok_spec + "' has " +
                      std::to_string(tok->vocab_size()));
  if (train->vocab_size() > cfg.vocab_size)  // gqe shards record their vocabulary; llm.c shards do not
    throw ConfigError(config_path + ": field 'vocab_size': " + std::to_string(cfg.vocab_size) +
                      " is smaller than the data's vocabulary (" + std::to_string(train->vocab_size()) + " in " +
                      train->describe() + ")");
  train->check_token_ids(cfg.vocab_size);  // llm.c shards record no vocabulary: every id is checked
  const at::Device device = device_option(args, "train", env.local_rank);
  // Every rank must run the same job: the ranks compare these fields at start-up (distributed/rendezvous.h).
  JobFingerprint fingerprint;
  flatten_into(fingerprint, "model", nlohmann::json::parse(model_config_to_json(cfg)));
  flatten_into(fingerprint, "recipe", recipe_to_json(r));
  fingerprint.emplace_back("data.train", files_identity(train_files));
  fingerprint.emplace_back("data.val", val_files.empty() ? "-" : files_identity(val_files));
  // Only a limited run has the field: the fingerprints of runs on whole shards stay as they were.
  if (train_tokens_limit > 0) fingerprint.emplace_back("data.train_tokens", std::to_string(train_tokens_limit));
  // By content: other files of the same names and sizes are other data.
  fingerprint.emplace_back("data.train_sha256", data_sha256(train_files));
  fingerprint.emplace_back("data.val_sha256", val_files.empty() ? "-" : data_sha256(val_files));
  fingerprint.emplace_back("data.tokenizer", tok ? std::filesystem::path(tok->name()).filename().string() + " (vocab " +
                                                       std::to_string(tok->vocab_size()) + ")"
                                                 : "-");
  // By content: a tokenizer retrained in place keeps its name and vocabulary size.
  fingerprint.emplace_back("data.tokenizer_sha256", tok ? tokenizer_sha256(tok_files) : "-");
  fingerprint.emplace_back("run.resume", args.get("resume", "-"));
  if (env.run_id.empty()) env.run_id = run_id_for_output(out);
  auto comm = make_communicator(
      env, std::chrono::milliseconds(int64_t(args.get_positive_double("dist-timeout", 300, 1e6) * 1000)), device,
      fingerprint);

  at::manual_seed(r.seed);
  LanguageModel model(cfg);
  if (device.is_cuda()) model.to(device);

  const ParamCounts pc = count_parameters(cfg);
  if (log) {
    *log << "gqe train: " << train->describe() << "\n"
         << "model: " << pc.total() << " parameters, attention " << to_string(cfg.attention.kind)
         << (cfg.attention.is_gqe() ? "/" + std::string(to_string(cfg.attention.variant)) : "") << ", active query heads "
         << cfg.attention.active_query_heads() << " of " << cfg.attention.num_heads << "\n"
         << "recipe: " << r.schedule.total_steps << " steps x " << tokens_per_step(r, world) << " tokens ("
         << world << " rank(s) x " << B << " x " << T << " x " << accumulation_steps(r, world)
         << " accumulation), lr " << r.schedule.peak_lr << " -> " << r.schedule.min_lr << " (warmup "
         << r.schedule.warmup_steps << ", decay " << decay_steps(r.schedule) << " " << r.schedule.decay_shape
         << "), AdamW wd " << r.adamw.weight_decay << ", ZClip " << (r.zclip.enabled ? "on" : "off")
         << (r.zclip.max_norm > 0 ? " + cap " + std::to_string(r.zclip.max_norm) : "") << ", "
         << (autocast_enabled_for(r, device) ? "bf16 autocast" : "fp32") << " on " << device.str() << "\n"
         << "runtime: " << describe_runtime() << " (" << threads << " threads)\n";
  }
  TrainerIO io;
  io.out_dir = out;
  io.log = log;
  io.stop_requested = stop_signal_received;
  io.run_identity = resume_identity(fingerprint);
  Trainer trainer(model, r, *train, make_val, *comm, io);
  if (args.has("resume")) {
    // "auto": continue from OUT's latest checkpoint if there is one, else start (preemptible clusters).
    const std::string rp = args.require("resume");
    bool have = true;
    if (rp == "auto") {
      try {
        find_train_checkpoint(out);
      } catch (const Error&) {
        have = false;
        if (log) *log << "--resume auto: no checkpoint in " << out << " yet, starting from step 0\n";
      }
    }
    if (have) trainer.resume(rp == "auto" ? out : rp, WeightLoadOptions{args.flag("allow-nonfinite-weights")});
  }
  if (main_rank) {
    if (overwrite) {
      // Only now, with every input checked: a refused run leaves the previous one whole. The tokenizer this
      // run was given may be the previous run's copy in OUT; it stays.
      const std::vector<std::string> keep = tok_files.paths;
      const std::vector<std::string> removed = remove_run_outputs(out, keep);
      if (log && !removed.empty()) {
        *log << "--overwrite: removed";
        for (const auto& n : removed) *log << " " << n;
        *log << " from " << out << "\n";
      }
    }
    fs::mkdirs(out);
    if (!tok_spec.empty()) record_run_tokenizer(out, tok_spec);
    // The resolved recipe beside the checkpoints: what was actually run.
    nlohmann::json rec = recipe_to_json(r);
    rec["world_size"] = world;
    rec["model_config"] = config_path;
    fs::write_file_atomic(out + "/recipe.json", rec.dump(2) + "\n");
  }
  const int64_t stop_at = args.get_int("stop-at", -1);
  TrainResult res;
  {
    // From here a SIGTERM or SIGINT (a scheduler's limit, a preemption, Ctrl-C) no longer loses the steps
    // since the last checkpoint: the step in progress is finished on every rank and saved. Before this
    // point there is no progress to lose, and after it the checkpoint is written.
    StopSignals signals(main_rank ? "gqe train: stopping after this step and saving a checkpoint (signal again to "
                                    "exit at once)\n"
                                  : nullptr);
    res = trainer.run(stop_at);
  }
  // A signal during the final save is honoured too: the run ends here, without the sample.
  const int stop_signal = res.stopped_by != 0 ? res.stopped_by : stop_signal_received();
  if (log) {
    *log << "trained to step " << trainer.step() << " (" << res.losses.size() << " steps in this run, "
         << res.seconds << " s, " << res.tokens_per_second << " tokens/s over " << world << " rank(s); "
         << res.clipped_steps << " clipped, " << res.skipped_steps << " skipped)";
    if (!res.losses.empty()) *log << "; loss " << res.losses.front() << " -> " << res.losses.back();
    if (!res.checkpoint.empty()) *log << "; checkpoint in " << out;
    else *log << "; no steps to train, so no checkpoint written";
    *log << std::endl;
  }
  if (stop_signal != 0) {
    if (log) {
      *log << "gqe train: stopped by " << signal_name(stop_signal) << " at step " << trainer.step() << " of "
           << r.schedule.total_steps;
      if (!res.checkpoint.empty()) *log << ", checkpoint " << res.checkpoint;
      *log << "; to continue, run the same command with --resume " << out << std::endl;
    }
    return 128 + stop_signal;
  }

  const int64_t n_sample = args.get_int("sample-tokens", 200);
  if (main_rank && n_sample > 0 && tok) {
    SamplingOptions so;
    so.max_new_tokens = n_sample;
    so.temperature = 0.8;
    so.top_k = 40;
    so.seed = r.seed;
    so.vocab_limit = tok->vocab_size();
    const std::string prompt = args.get("sample-prompt", "And God said");
    std::cout << "sample (temperature 0.8, top-k 40):\n" << prompt << std::flush;
    StreamDecoder text(*tok);
    generate(model, tok->encode(prompt), so, [&](int64_t t) { std::cout << text.push(t) << std::flush; });
    std::cout << text.finish() << "\n";
  }
  return 0;
}

}  // namespace gqe::cli
