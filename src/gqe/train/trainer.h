// Minimal single-process trainer: random fixed-length windows of a token stream, AdamW, warmup +
// cosine schedule, gradient-norm clipping, a progress line, periodic validation and checkpoints.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gqe/model/transformer.h"

namespace gqe {

struct TrainOptions {
  int64_t steps = 300;
  int64_t batch_size = 16;
  int64_t seq_len = 128;
  double lr = 3e-3;            // peak learning rate
  double min_lr_ratio = 0.1;   // floor = lr * min_lr_ratio
  int64_t warmup_steps = 30;
  double weight_decay = 0.1;   // on matrices (not norms, not embeddings)
  double grad_clip = 1.0;      // max global gradient norm (0 = off)
  uint64_t seed = 1234;
  int64_t log_every = 10;
  int64_t eval_every = 100;    // validation loss every N steps (0 = only at the end)
  int64_t eval_batches = 4;
  double val_fraction = 0.05;  // tail of the token stream held out for validation
  std::string out_dir;         // checkpoint directory ("" = none)
  int64_t save_every = 0;      // also checkpoint every N steps (0 = only at the end)
};

struct TrainResult {
  std::vector<double> losses;  // LM loss per step
  std::vector<double> aux_losses;
  double final_val_loss = 0;
  double tokens_per_second = 0;
  double seconds = 0;
};

double learning_rate_at(const TrainOptions& opt, int64_t step);  // step in [0, steps)

TrainResult train_model(LanguageModel& model, const std::vector<int64_t>& tokens, const TrainOptions& opt,
                        std::ostream& log);

// Mean LM loss over `batches` fixed windows of `tokens` (deterministic, no gradient).
double evaluate_loss(LanguageModel& model, const std::vector<int64_t>& tokens, int64_t batch_size, int64_t seq_len,
                     int64_t batches);

}  // namespace gqe
