// The training loop: the paper's recipe (docs/method.md, "Training recipe") on one or many processes.
//
// One optimizer step:
//   1. accum micro-batches per rank: forward (bf16 autocast on CUDA when asked), loss = LM loss +
//      aux_loss_weight * load-balancing loss (GQE), scaled by 1/accum, backward (gradients add up);
//   2. gradients averaged over ranks (distributed/communicator.h), the step's loss/aux/router statistics
//      summed over ranks;
//   3. a non-finite loss or gradient norm, or a loss spike (z-score of the loss against its EMA above
//      recipe.loss_spike_z), skips the update: weights, AdamW and ZClip state stay untouched, the batch is
//      consumed, the skip is logged; max_skipped_steps consecutive skips stop the run with an error;
//   4. ZClip (train/zclip.h) rescales the gradients, AdamW (train/adamw.h) updates with the WSD learning
//      rate (train/schedule.h) of this step.
// A stop asked for on any rank (TrainerIO::stop_requested, e.g. a SIGTERM) travels with step 2's sums, so
// every rank learns of it in the same step; that step is finished, checkpointed, and the run ends there.
// Every rank runs the same decisions on the same all-reduced numbers, so ranks never diverge.
// Rank 0 alone prints, writes metrics.jsonl and checkpoints.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gqe/distributed/communicator.h"
#include "gqe/io/checkpoint.h"
#include "gqe/model/transformer.h"
#include "gqe/train/adamw.h"
#include "gqe/train/metrics.h"
#include "gqe/train/recipe.h"
#include "gqe/train/token_source.h"
#include "gqe/train/zclip.h"

namespace gqe {

// z-score spike detector on the training loss (same EMA scheme as ZClip, fed with every finite loss so
// that a lasting level shift stops being a "spike" after a few steps).
class LossSpikeDetector {
 public:
  explicit LossSpikeDetector(double z_threshold = 6.0, double alpha = 0.97, int64_t warmup = 25)
      : z_(z_threshold), alpha_(alpha), warmup_(warmup) {}
  // Returns true when `loss` is a spike; updates the statistics either way.
  bool observe(double loss);
  nlohmann::json state() const;
  void load_state(const nlohmann::json& j, const std::string& source);  // source: the file, for errors

 private:
  double z_, alpha_;
  int64_t warmup_, seen_ = 0;
  double mean_ = 0, var_ = 0;
};

// Step 3 of the recipe: whether this step's update is skipped, and why. Feeds the loss to `spikes`.
struct SkipDecision {
  bool skip = false;
  std::string reason;  // "non-finite loss or gradient" | "loss spike"
};
SkipDecision decide_skip(double loss, double aux, double grad_norm, double spike_z, LossSpikeDetector& spikes);

struct TrainerIO {
  std::string out_dir;           // run directory: checkpoints/, metrics.jsonl, config.json + model.safetensors
  std::ostream* log = nullptr;   // progress lines (rank 0); nullptr = silent
  // Polled once per step on every rank: 0, or the number (below 65) of a signal asking this rank to stop.
  // Empty: never stop early.
  std::function<int()> stop_requested;
  // What defines the run ("model.hidden_size" -> "32", "recipe.seed" -> "5", "data.train" -> ...): recorded
  // in every checkpoint; resume() refuses a checkpoint whose record differs, naming the field and both
  // values. Empty: nothing recorded or compared.
  JobFingerprint run_identity;
};

struct TrainResult {
  std::vector<double> losses;      // mean LM loss of each step run by this call (all ranks)
  std::vector<double> aux_losses;
  std::vector<double> grad_norms;  // before clipping
  std::vector<bool> skipped;
  double final_val_loss = 0;       // NaN when no validation ran
  double tokens_per_second = 0;    // this call's steps, all ranks together
  double seconds = 0;
  int64_t clipped_steps = 0, skipped_steps = 0;
  std::string checkpoint;          // the last checkpoint this call wrote; empty when it wrote none
  int stopped_by = 0;              // the signal that ended the run early (the same on all ranks), or 0
};

using ValSourceFactory = std::function<std::unique_ptr<TokenSource>()>;  // a fresh source at position 0

class Trainer {
 public:
  // `recipe` must be resolved (resolve_recipe) for comm.world_size(); `train` yields this rank's
  // micro-batches of recipe.micro_batch x recipe.seq_len. `make_val` may be empty (no validation).
  Trainer(LanguageModel& model, TrainRecipe recipe, TokenSource& train, ValSourceFactory make_val,
          Communicator& comm, TrainerIO io);

  // Restores weights, optimizer, schedule position, ZClip, spike detector, RNG and data position from a
  // checkpoint directory or a run directory (its latest checkpoint). Throws gqe::Error when the
  // checkpoint belongs to another run (TrainerIO::run_identity, the batch layout).
  void resume(const std::string& path, const WeightLoadOptions& options = {});
  // Trains until recipe.schedule.total_steps (or until `stop_at` steps when >= 0), validating and saving
  // on the recipe's cadence, and saving at the end when out_dir is set. A stop request ends it after the
  // step in which some rank asked for it, with a checkpoint of that step (TrainResult::stopped_by).
  TrainResult run(int64_t stop_at = -1);
  // Mean LM loss over recipe.eval_batches batches of the validation source on every rank.
  double evaluate();
  // Writes a checkpoint of the current state (rank 0; a no-op elsewhere). Returns its directory.
  std::string save_checkpoint();

  int64_t step() const { return step_; }
  int64_t accumulation() const { return accum_; }
  const AdamW& optimizer() const { return *opt_; }
  const ZClip& zclip() const { return zclip_; }

 private:
  struct StepOutcome;
  StepOutcome train_step();
  // The named steps of train_step, in order.
  void accumulate(StepOutcome& o);           // 1: micro-batches forward + backward; loss sums, router counts
  void reduce_across_ranks(StepOutcome& o);  // 2: gradients averaged, sums -> means over all micro-batches
  double gradient_norm() const;              //    global L2 norm of the (averaged) gradients
  void clip_and_update(StepOutcome& o);      // 4: ZClip, then AdamW at this step's learning rate
  void count_skip(const std::string& reason);  // 3, when skipped: stops the run after too many in a row
  double elapsed_seconds() const;            // training time of this run, earlier processes included
  nlohmann::json state_json() const;

  LanguageModel& model_;
  TrainRecipe r_;
  TokenSource& train_;
  ValSourceFactory make_val_;
  Communicator& comm_;
  TrainerIO io_;
  std::unique_ptr<AdamW> opt_;
  ZClip zclip_;
  LossSpikeDetector spikes_;
  MetricsLog metrics_;
  int64_t accum_ = 1, step_ = 0, tokens_seen_ = 0, consecutive_skips_ = 0, skipped_total_ = 0;
  double elapsed_before_ = 0;  // training seconds of earlier run() calls and processes (resumed runs)
  std::optional<std::chrono::steady_clock::time_point> running_since_;  // set while run() trains
  bool resumed_ = false, use_autocast_ = false;
  at::Device device_{at::kCPU};
};

// The run's device from the model's parameters; validates recipe.precision against it.
bool autocast_enabled_for(const TrainRecipe& r, const at::Device& device);

}  // namespace gqe
