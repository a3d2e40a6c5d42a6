// Full training checkpoints, so that an interrupted run resumes exactly where it stopped.
//
// Layout under the run directory OUT:
//   OUT/checkpoints/step-00000100/config.json          model config
//                                 model.safetensors    weights (names as in model/transformer.h)
//                                 optimizer.safetensors AdamW moments "exp_avg/<param>", "exp_avg_sq/<param>"
//                                                      + "rng/cpu" (the CPU generator state, U8)
//                                 trainer_state.json   step, optimizer step count, data position,
//                                                      ZClip and spike-detector state, recipe, world size
//   OUT/checkpoints/latest       the name of the newest complete checkpoint
// A checkpoint is written into OUT/checkpoints/.tmp-step-*, every file fsync'ed, then the directory is
// renamed into place (atomic on POSIX), the parent fsync'ed, and `latest` replaced atomically. A crash
// (even kill -9) at any point leaves the previous checkpoint complete and `latest` naming a complete one.
// Only the newest `keep` step-* directories are kept.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gqe/io/checkpoint.h"
#include "gqe/model/transformer.h"

namespace gqe {

struct TrainCheckpoint {
  int64_t step = 0;
  nlohmann::json state;  // trainer_state.json
  std::vector<std::pair<std::string, at::Tensor>> optimizer_tensors;
  at::Tensor rng_state;  // U8, may be undefined
};

std::string checkpoint_name(int64_t step);  // "step-00000100"

// Writes OUT/checkpoints/step-N atomically and prunes old ones; returns the checkpoint directory.
std::string write_train_checkpoint(const std::string& run_dir, int64_t step, LanguageModel& model,
                                   const std::vector<std::pair<std::string, at::Tensor>>& optimizer_tensors,
                                   const at::Tensor& rng_state, const nlohmann::json& state, int64_t keep);

// `path`: a checkpoint directory (holding trainer_state.json) or a run directory (its latest checkpoint;
// falls back to the newest complete step-* if `latest` is missing or stale). Throws gqe::Error if none.
std::string find_train_checkpoint(const std::string& path);

// Loads weights into `model` (io/checkpoint.h load_model_weights rules) and returns the rest. Throws
// gqe::FormatError.
TrainCheckpoint read_train_checkpoint(const std::string& checkpoint_dir, LanguageModel& model,
                                      const WeightLoadOptions& options = {});

}  // namespace gqe
