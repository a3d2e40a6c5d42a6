// A training job: everything `gqe train` does between its flags and its exit code, for any caller (the
// command, a driver, a library user). Built from options, it checks every input before it writes anything,
// joins the other ranks (c10d, torchrun-style environment), builds the data sources, the model and the
// trainer; run() trains, checkpoints, writes the run directory and samples from the trained model.
#pragma once
#include <c10/core/Device.h>

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gqe/core/config.h"
#include "gqe/core/run_dir.h"
#include "gqe/tokenizers/run_tokenizer.h"
#include "gqe/tokenizers/tokenizer.h"
#include "gqe/distributed/communicator.h"
#include "gqe/model/transformer.h"
#include "gqe/train/recipe.h"
#include "gqe/train/token_source.h"
#include "gqe/train/trainer.h"

namespace gqe {

struct TrainJobOptions {
  std::string config_path;  // the model's JSON config
  // Data: exactly one of text_path and train_shards.
  std::string text_path;     // a text file, encoded with the tokenizer; its last 5% validates (unless val_shards)
  std::string train_shards;  // token shards (gqe or llm.c .bin): comma-separated paths or globs
  std::string val_shards;    // validation shards; empty: none, or the text's tail
  int64_t train_tokens = 0;  // > 0: train on the shards' first N tokens only (each epoch repeats them)
  // bytes, a SentencePiece .model, a tokenizer.json, or vocab.json + merges.txt. Empty: bytes with a text
  // file, the tokenizer the shards' meta.json names with shards.
  std::string tokenizer;
  std::string out_dir;
  // Defaults, a recipe file and flags already applied; the job resolves it for the world size.
  TrainRecipe recipe;
  std::string recipe_source = "command line";  // named in the recipe's errors
  int threads = 0;                             // <= 0: the host's cores shared by its local ranks
  std::string device = "cpu";                  // cpu | cuda[:N] (cuda = cuda:LOCAL_RANK)
  double dist_timeout_seconds = 300;
  std::string resume;      // empty, a run or checkpoint directory, or "auto" (out_dir's latest checkpoint if any)
  bool overwrite = false;  // replace a run already in out_dir (its checkpoints, metrics, model)
  bool allow_nonfinite_weights = false;
  bool ignore_memory_check = false;
  int64_t stop_at = -1;  // >= 0: stop after this step (resume later)
  int64_t sample_tokens = 200;
  std::string sample_prompt = "And God said";
};

class TrainJob {
 public:
  // Checks the options and every input, takes out_dir (RunDirLock on rank 0) and joins the other ranks.
  // Writes nothing into out_dir yet: a refused job leaves a previous run there whole. Throws gqe::Error
  // (ConfigError for the model config) naming the option or file at fault.
  explicit TrainJob(TrainJobOptions options);
  ~TrainJob();

  // Trains to the recipe's end (or stop_at), saving checkpoints on its cadence and at the end, then
  // samples from the model on rank 0. Returns 0, or 128 + the signal (SIGTERM, SIGINT) that stopped it
  // after checkpointing the step in progress.
  int run();

  const ModelConfig& config() const { return cfg_; }
  const TrainRecipe& recipe() const { return recipe_; }
  LanguageModel& model() { return *model_; }
  Trainer& trainer() { return *trainer_; }

 private:
  void open_tokenizer();
  void open_data();
  void print_summary() const;
  void write_run_files();
  void sample() const;

  TrainJobOptions o_;
  DistEnv env_;
  int threads_ = 0;
  std::ostream* log_ = nullptr;  // rank 0's progress; nullptr on the other ranks
  ModelConfig cfg_;
  TrainRecipe recipe_;
  std::optional<RunDirLock> out_lock_;
  std::string tok_spec_;
  TokenizerFiles tok_files_;
  std::unique_ptr<Tokenizer> tok_;
  std::vector<std::string> train_files_, val_files_;
  std::unique_ptr<TokenSource> train_;
  ValSourceFactory make_val_;
  c10::Device device_{c10::kCPU};
  JobFingerprint fingerprint_;
  std::unique_ptr<Communicator> comm_;
  std::shared_ptr<LanguageModel> model_;
  std::unique_ptr<Trainer> trainer_;
};

}  // namespace gqe
