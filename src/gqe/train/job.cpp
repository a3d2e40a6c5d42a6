#include "gqe/train/job.h"

#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/memory.h"
#include "gqe/core/model_stats.h"
#include "gqe/core/runtime.h"
#include "gqe/core/stop_signals.h"
#include "gqe/data/content_identity.h"
#include "gqe/data/shard.h"
#include "gqe/data/shard_meta.h"
#include "gqe/tokenizers/stream_decoder.h"
#include "gqe/generate/generate.h"
#include "gqe/train/train_checkpoint.h"

namespace gqe {

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

// Ranks sharing a host share its cores (torchrun sets LOCAL_WORLD_SIZE).
int threads_per_rank(int requested, const DistEnv& env) {
  if (requested > 0 || env.world_size <= 1) return requested;
  const char* lws = std::getenv("LOCAL_WORLD_SIZE");
  const int local = lws ? std::max(1, std::atoi(lws)) : env.world_size;
  return std::max(1, int(std::thread::hardware_concurrency()) / local);
}

}  // namespace

TrainJob::TrainJob(TrainJobOptions options) : o_(std::move(options)), env_(dist_env_from_environment()) {
  threads_ = configure_threads(threads_per_rank(o_.threads, env_));
  const bool main_rank = env_.rank == 0;
  log_ = main_rank ? &std::cout : nullptr;

  cfg_ = load_model_config(o_.config_path);
  recipe_ = o_.recipe;
  resolve_recipe(recipe_, env_.world_size, o_.recipe_source);
  if (recipe_.seq_len > cfg_.max_position_embeddings)
    throw ConfigError(o_.config_path + ": field 'max_position_embeddings': " + std::to_string(cfg_.max_position_embeddings) +
                      " is shorter than the training seq_len " + std::to_string(recipe_.seq_len));
  // Before anything is allocated. Host memory only: a CUDA run keeps its model on the device.
  if (!o_.ignore_memory_check && o_.device.rfind("cuda", 0) != 0)
    check_memory(estimate_training_memory(cfg_, recipe_.micro_batch, recipe_.seq_len), "this training run",
                 "--ignore-memory-check");

  // The run directory belongs to this process from here on (rank 0 writes it): a second run on it stops
  // here, before touching anything; then what dead writers left behind is removed.
  const std::string& out = o_.out_dir;
  if (o_.overwrite && !o_.resume.empty())
    throw Error("gqe train: --overwrite starts over and --resume continues: give one of them");
  if (main_rank) {
    out_lock_.emplace(out, "--out");
    // A run there is continued (--resume) or deliberately replaced (--overwrite), never overwritten by
    // accident: its metrics would be truncated and its checkpoints mixed with the new run's.
    const std::vector<std::string> previous = previous_run_outputs(out);
    if (!previous.empty() && o_.resume.empty() && !o_.overwrite) {
      std::string names;
      for (const auto& n : previous) names += (names.empty() ? "" : ", ") + n;
      throw Error("gqe train: --out " + out + " already holds a run (" + names + "); continue it with --resume " +
                  out + ", or start over with --overwrite (deletes that run's checkpoints, metrics and model)");
    }
    if (out_lock_->previous_owner_here())
      for (const std::string& d : {out, out + "/checkpoints"})
        for (const std::string& n : remove_stale_temp_files(d))
          *log_ << "removed " << d << "/" << n << " (left behind by a process that no longer runs)\n";
  }

  open_tokenizer();
  open_data();
  device_ = parse_device(o_.device, "gqe train: --device", env_.local_rank);

  // Every rank must run the same job: the ranks compare these fields at start-up (distributed/rendezvous.h).
  flatten_into(fingerprint_, "model", nlohmann::json::parse(model_config_to_json(cfg_)));
  flatten_into(fingerprint_, "recipe", recipe_to_json(recipe_));
  fingerprint_.emplace_back("data.train", files_identity(train_files_));
  fingerprint_.emplace_back("data.val", val_files_.empty() ? "-" : files_identity(val_files_));
  // Only a limited run has the field: the fingerprints of runs on whole shards stay as they were.
  if (o_.train_tokens > 0) fingerprint_.emplace_back("data.train_tokens", std::to_string(o_.train_tokens));
  // By content: other files of the same names and sizes are other data.
  fingerprint_.emplace_back("data.train_sha256", data_sha256(train_files_));
  fingerprint_.emplace_back("data.val_sha256", val_files_.empty() ? "-" : data_sha256(val_files_));
  fingerprint_.emplace_back("data.tokenizer", tok_ ? std::filesystem::path(tok_->name()).filename().string() + " (vocab " +
                                                         std::to_string(tok_->vocab_size()) + ")"
                                                   : "-");
  // By content: a tokenizer retrained in place keeps its name and vocabulary size.
  fingerprint_.emplace_back("data.tokenizer_sha256", tok_ ? tokenizer_sha256(tok_files_) : "-");
  fingerprint_.emplace_back("run.resume", o_.resume.empty() ? "-" : o_.resume);
  if (env_.run_id.empty()) env_.run_id = run_id_for_output(out);
  comm_ = make_communicator(env_, std::chrono::milliseconds(int64_t(o_.dist_timeout_seconds * 1000)), device_,
                            fingerprint_);

  at::manual_seed(recipe_.seed);
  model_ = std::make_shared<LanguageModel>(cfg_);
  if (device_.is_cuda()) model_->to(device_);
  print_summary();

  TrainerIO io;
  io.out_dir = out;
  io.log = log_;
  io.stop_requested = stop_signal_received;
  io.run_identity = resume_identity(fingerprint_);
  trainer_ = std::make_unique<Trainer>(*model_, recipe_, *train_, make_val_, *comm_, io);
  if (!o_.resume.empty()) {
    // "auto": continue from OUT's latest checkpoint if there is one, else start (preemptible clusters).
    bool have = true;
    if (o_.resume == "auto") {
      try {
        find_train_checkpoint(out);
      } catch (const Error&) {
        have = false;
        if (log_) *log_ << "--resume auto: no checkpoint in " << out << " yet, starting from step 0\n";
      }
    }
    if (have) trainer_->resume(o_.resume == "auto" ? out : o_.resume, WeightLoadOptions{o_.allow_nonfinite_weights});
  }
}

TrainJob::~TrainJob() = default;

// The tokenizer encodes the text (bytes by default), decodes the final sample and travels with the run
// (record_run_tokenizer: generate, eval and routes pick it up). gqe shards name theirs in meta.json.
void TrainJob::open_tokenizer() {
  tok_spec_ = !o_.tokenizer.empty() ? o_.tokenizer : !o_.text_path.empty() ? "bytes" : "";
  if (tok_spec_.empty() && !o_.train_shards.empty()) {
    std::string missing;
    tok_spec_ = tokenizer_of_shards(resolve_shard_paths(o_.train_shards), &missing);
    if (!tok_spec_.empty() && log_) *log_ << "tokenizer " << tok_spec_ << " (from the shards' meta.json)\n";
    if (!missing.empty() && log_)
      std::cerr << "warning: the shards' meta.json names the tokenizer " << missing
                << ", which is not there: this run records no tokenizer (generate, eval and routes will ask for "
                   "one); pass --tokenizer PATH to record it\n";
  }
  if (!tok_spec_.empty()) {
    tok_files_ = resolve_tokenizer_files(tok_spec_);
    tok_ = load_tokenizer(tok_files_);
    if (tok_->vocab_size() > cfg_.vocab_size)
      throw ConfigError(o_.config_path + ": field 'vocab_size': " + std::to_string(cfg_.vocab_size) +
                        " is smaller than the tokenizer's " + std::to_string(tok_->vocab_size()) + " (" + tok_spec_ + ")");
  }
  // The final sample's prompt must fit the context: found now, not after training.
  if (tok_ && o_.sample_tokens > 0) {
    const size_t n = tok_->encode(o_.sample_prompt).size();
    if (max_new_tokens_after(cfg_, int64_t(n)) < 1)
      throw Error("gqe train: --sample-prompt is " + std::to_string(n) + " tokens, longer than the model's context of " +
                  std::to_string(cfg_.max_position_embeddings) + " tokens (max_position_embeddings)");
  }
}

// This rank's slice of the training stream; validation as a fresh source per evaluation.
void TrainJob::open_data() {
  const int rank = env_.rank, world = env_.world_size;
  const int64_t T = recipe_.seq_len, B = recipe_.micro_batch;
  std::ostream* warn = log_ ? &std::cerr : nullptr;
  if (o_.text_path.empty() == o_.train_shards.empty())
    throw Error("gqe train: give exactly one of --data TEXT_FILE or --train-shards LIST");
  if (o_.train_tokens > 0 && o_.train_shards.empty())
    throw Error("--train-tokens limits --train-shards; with --data, cut the text file instead");
  if (!o_.text_path.empty()) {
    const std::string& path = o_.text_path;
    train_files_ = {path};
    auto tokens = tok_->encode(fs::read_file(path));
    const size_t n_val = !o_.val_shards.empty() ? 0 : size_t(double(tokens.size()) * 0.05);
    auto train_tokens = std::make_shared<const std::vector<int64_t>>(tokens.begin(), tokens.end() - long(n_val));
    auto val_tokens = std::make_shared<const std::vector<int64_t>>(tokens.end() - long(n_val), tokens.end());
    train_ = std::make_unique<TextTokenSource>(train_tokens, T, B, recipe_.data_order_seed(), rank, world, path);
    // Validation windows in a fixed order, independent of the training seed.
    if (n_val > size_t(T) && int64_t(n_val - 1) / T >= B * world)
      make_val_ = [=] { return std::make_unique<TextTokenSource>(val_tokens, T, B, 0, rank, world, path + " (validation tail)"); };
    else if (log_ && recipe_.eval_batches > 0)
      *log_ << "note: the 5% validation tail of " << path << " is too short for one batch; no validation loss\n";
  } else {
    auto shards = resolve_shard_paths(o_.train_shards);
    // Before the shards are read: ids from another tokenizer would train without any error.
    if (tok_) check_shards_tokenizer(shards, tok_files_, warn);
    train_files_ = shards;
    train_ = make_shard_source(shards, T, B, recipe_.data_order_seed(), rank, world, o_.train_tokens);
  }
  if (!o_.val_shards.empty()) {
    auto vs = resolve_shard_paths(o_.val_shards);
    if (tok_) check_shards_tokenizer(vs, tok_files_, warn);
    val_files_ = vs;
    make_shard_source(vs, T, B, 0, rank, world)->check_token_ids(cfg_.vocab_size);  // now, not at the first evaluation
    make_val_ = [=] { return make_shard_source(vs, T, B, 0, rank, world); };
  }

  if (tok_ && train_->vocab_size() > 0 && train_->vocab_size() != tok_->vocab_size())
    throw ConfigError("the training shards were written by a tokenizer of " + std::to_string(train_->vocab_size()) +
                      " ids (" + train_->describe() + "), the tokenizer '" + tok_spec_ + "' has " +
                      std::to_string(tok_->vocab_size()));
  if (train_->vocab_size() > cfg_.vocab_size)  // gqe shards record their vocabulary; llm.c shards do not
    throw ConfigError(o_.config_path + ": field 'vocab_size': " + std::to_string(cfg_.vocab_size) +
                      " is smaller than the data's vocabulary (" + std::to_string(train_->vocab_size()) + " in " +
                      train_->describe() + ")");
  train_->check_token_ids(cfg_.vocab_size);  // llm.c shards record no vocabulary: every id is checked
}

void TrainJob::print_summary() const {
  if (!log_) return;
  const TrainRecipe& r = recipe_;
  const int world = env_.world_size;
  *log_ << "gqe train: " << train_->describe() << "\n"
        << "model: " << count_parameters(cfg_).total() << " parameters, attention " << to_string(cfg_.attention.kind)
        << (cfg_.attention.is_gqe() ? "/" + std::string(to_string(cfg_.attention.variant)) : "")
        << ", active query heads " << cfg_.attention.active_query_heads() << " of " << cfg_.attention.num_heads << "\n"
        << "recipe: " << r.schedule.total_steps << " steps x " << tokens_per_step(r, world) << " tokens (" << world
        << " rank(s) x " << r.micro_batch << " x " << r.seq_len << " x " << accumulation_steps(r, world)
        << " accumulation), lr " << r.schedule.peak_lr << " -> " << r.schedule.min_lr << " (warmup "
        << r.schedule.warmup_steps << ", decay " << decay_steps(r.schedule) << " " << to_string(r.schedule.decay_shape)
        << "), AdamW wd " << r.adamw.weight_decay << ", ZClip " << (r.zclip.enabled ? "on" : "off")
        << (r.zclip.max_norm > 0 ? " + cap " + std::to_string(r.zclip.max_norm) : "") << ", "
        << (autocast_enabled_for(r, device_) ? "bf16 autocast" : "fp32") << " on " << device_.str() << "\n"
        << "runtime: " << describe_runtime() << " (" << threads_ << " threads)\n";
}

// Rank 0, once every input is checked and the checkpoint (if any) restored.
void TrainJob::write_run_files() {
  const std::string& out = o_.out_dir;
  if (o_.overwrite) {
    // Only now: a refused run leaves the previous one whole. The tokenizer this run was given may be the
    // previous run's copy in OUT; it stays.
    const std::vector<std::string> removed = remove_run_outputs(out, tok_files_.paths);
    if (log_ && !removed.empty()) {
      *log_ << "--overwrite: removed";
      for (const auto& n : removed) *log_ << " " << n;
      *log_ << " from " << out << "\n";
    }
  }
  fs::mkdirs(out);
  if (!tok_spec_.empty()) record_run_tokenizer(out, tok_spec_);
  // The resolved recipe beside the checkpoints: what was actually run.
  nlohmann::json rec = recipe_to_json(recipe_);
  rec["world_size"] = env_.world_size;
  rec["model_config"] = o_.config_path;
  fs::write_file_atomic(out + "/recipe.json", rec.dump(2) + "\n");
}

int TrainJob::run() {
  const bool main_rank = env_.rank == 0;
  if (main_rank) write_run_files();
  TrainResult res;
  {
    // From here a SIGTERM or SIGINT (a scheduler's limit, a preemption, Ctrl-C) no longer loses the steps
    // since the last checkpoint: the step in progress is finished on every rank and saved. Before this
    // point there is no progress to lose, and after it the checkpoint is written.
    StopSignals signals(main_rank ? "gqe train: stopping after this step and saving a checkpoint (signal again to "
                                    "exit at once)\n"
                                  : nullptr);
    res = trainer_->run(o_.stop_at);
  }
  // A signal during the final save is honoured too: the run ends here, without the sample.
  const int stop_signal = res.stopped_by != 0 ? res.stopped_by : stop_signal_received();
  const std::string& out = o_.out_dir;
  if (log_) {
    *log_ << "trained to step " << trainer_->step() << " (" << res.losses.size() << " steps in this run, "
          << res.seconds << " s, " << res.tokens_per_second << " tokens/s over " << env_.world_size << " rank(s); "
          << res.clipped_steps << " clipped, " << res.skipped_steps << " skipped)";
    if (!res.losses.empty()) *log_ << "; loss " << res.losses.front() << " -> " << res.losses.back();
    if (!res.checkpoint.empty()) *log_ << "; checkpoint in " << out;
    else *log_ << "; no steps to train, so no checkpoint written";
    *log_ << std::endl;
  }
  if (stop_signal != 0) {
    if (log_) {
      *log_ << "gqe train: stopped by " << signal_name(stop_signal) << " at step " << trainer_->step() << " of "
            << recipe_.schedule.total_steps;
      if (!res.checkpoint.empty()) *log_ << ", checkpoint " << res.checkpoint;
      *log_ << "; to continue, run the same command with --resume " << out << std::endl;
    }
    return 128 + stop_signal;
  }
  if (main_rank) sample();
  return 0;
}

void TrainJob::sample() const {
  if (o_.sample_tokens <= 0 || !tok_) return;
  SamplingOptions so;
  so.max_new_tokens = o_.sample_tokens;
  so.temperature = 0.8;
  so.top_k = 40;
  so.seed = recipe_.seed;
  so.vocab_limit = tok_->vocab_size();
  std::cout << "sample (temperature 0.8, top-k 40):\n" << o_.sample_prompt << std::flush;
  StreamDecoder text(*tok_);
  generate(*model_, tok_->encode(o_.sample_prompt), so, [&](int64_t t) { std::cout << text.push(t) << std::flush; });
  std::cout << text.finish() << "\n";
}

}  // namespace gqe
