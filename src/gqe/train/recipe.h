// Everything that defines a training run except the model and the data: batch geometry, optimizer,
// schedule, clipping, spike handling, logging and checkpoint cadence. A recipe can be read from a JSON
// file (configs/recipe-*.json; keys below, unknown keys are errors) and is then overridden by flags.
//
//   {"seq_len": 2048, "micro_batch": 8, "global_batch_tokens": 1048576,
//    "total_tokens": 30e9 | "steps": N,   "warmup_tokens": 3e9 | "warmup_steps": N,
//    "lr": 5e-4, "min_lr": 1e-5, "decay_fraction": 0.2, "decay_shape": "linear",
//    "beta1": 0.9, "beta2": 0.95, "eps": 1e-7, "weight_decay": 0.1,
//    "zclip": true, "zclip_alpha": 0.97, "zclip_z": 2.5, "zclip_warmup": 25, "max_grad_norm": 0,
//    "loss_spike_z": 6, "max_skipped_steps": 20, "precision": "auto", "seed": 1234,
//    "data_seed": 7 (optional: the data order's own seed; without it the order follows "seed"),
//    "log_every": 10, "eval_every": 250, "eval_batches": 8, "save_every": 1000, "keep_checkpoints": 3}
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "gqe/core/enum_names.h"
#include "gqe/train/adamw.h"
#include "gqe/train/schedule.h"
#include "gqe/train/zclip.h"

namespace gqe {

// The arithmetic a run trains in: "auto" picks bf16 autocast on CUDA and fp32 on the CPU; "bf16" asks for
// autocast (CUDA only); "fp32" turns it off.
enum class Precision { device_default, fp32, bf16 };
GQE_ENUM_NAMES(Precision, "precision", {Precision::device_default, "auto"}, {Precision::fp32, "fp32"},
               {Precision::bf16, "bf16"})

struct TrainRecipe {
  TrainRecipe() { schedule.warmup_steps = -1; }  // -1: 10% of the steps (the paper: 3B of 30B tokens)
  int64_t seq_len = 128;
  int64_t micro_batch = 16;           // sequences per rank per forward/backward
  int64_t global_batch_tokens = 0;    // tokens per optimizer step over all ranks; 0 = micro_batch*seq_len*world
  double total_tokens = 0;            // alternative to schedule.total_steps (resolved by resolve())
  double warmup_tokens = -1;          // alternative to schedule.warmup_steps (-1: use warmup_steps)
  ScheduleOptions schedule;
  AdamWOptions adamw;
  ZClipOptions zclip;
  double loss_spike_z = 6.0;          // skip a step whose loss z-score (EMA as ZClip's) exceeds this; 0 = off
  int64_t max_skipped_steps = 20;     // consecutive skipped steps before the run stops with an error
  Precision precision = Precision::device_default;
  uint64_t seed = 1234;               // the model's initialisation (and the data order unless data_seed is set)
  int64_t data_seed = -1;             // the training data order's seed; -1: the same as seed
  uint64_t data_order_seed() const { return data_seed >= 0 ? uint64_t(data_seed) : seed; }
  int64_t log_every = 10;
  int64_t eval_every = 100;           // 0 = only at the end
  int64_t eval_batches = 4;
  int64_t save_every = 0;             // 0 = only at the end
  int64_t keep_checkpoints = 3;       // training checkpoints kept (the newest K)
};

// Reads keys from `j` into `r` (only those present). Throws gqe::ConfigError naming source and key.
void apply_recipe_json(TrainRecipe& r, const nlohmann::json& j, const std::string& source);
TrainRecipe load_recipe(const std::string& path);
nlohmann::json recipe_to_json(const TrainRecipe& r);

// Gradient-accumulation steps so that micro_batch * seq_len * world * accum == global_batch_tokens.
// Throws gqe::ConfigError when it does not divide.
int64_t accumulation_steps(const TrainRecipe& r, int world_size);
int64_t tokens_per_step(const TrainRecipe& r, int world_size);
// Turns token-based lengths into steps (total_tokens -> schedule.total_steps, warmup_tokens ->
// schedule.warmup_steps) and validates everything. `source` names where the recipe came from.
void resolve_recipe(TrainRecipe& r, int world_size, const std::string& source);

}  // namespace gqe
