// ZClip: adaptive gradient-norm clipping by z-score (Kumar et al., 2025), as its authors define it.
//
// State: an EMA of the gradient norm's mean and variance (alpha = 0.97). The first `warmup_steps` (25)
// norms are collected unclipped (except by the optional absolute cap); their mean and (population)
// variance initialise the EMA. After that, for each norm g:
//     std = sqrt(var);  z = (g - mean) / (std + eps)
//     if z > z_threshold (2.5):  g' = mean + z_threshold^2 * std / z     (the authors' "adaptive scaling":
//                                                                        mean + thr * std / (z / thr))
//     else g' = g
//     mean <- alpha * mean + (1 - alpha) * g'
//     var  <- alpha * var  + (1 - alpha) * (g' - mean)^2      (with the updated mean, as in the reference)
// The gradients are scaled by g' / g. The clipped norm, not the spike, feeds the EMA so one spike does not
// inflate the statistics. The optional absolute cap (max_norm > 0) clips on top: min(g', max_norm); it is
// a safety net only and does not feed the EMA. Non-finite norms must not reach observe() (the trainer
// skips such steps).
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace gqe {

struct ZClipOptions {
  bool enabled = true;
  double alpha = 0.97;
  double z_threshold = 2.5;
  int64_t warmup_steps = 25;
  double eps = 1e-6;
  double max_norm = 0.0;  // absolute cap on top; 0 = none
};

struct ZClipDecision {
  double norm = 0;       // the observed norm
  double target = 0;     // the norm to scale to (== norm when not clipped)
  double z = 0;          // z-score of the norm (0 during warm-up)
  bool clipped = false;  // target < norm
};

class ZClip {
 public:
  explicit ZClip(ZClipOptions o = {}) : o_(o) {}
  // Updates the statistics with this step's norm and returns how to clip it.
  ZClipDecision observe(double norm);

  bool initialized() const { return initialized_; }
  double mean() const { return mean_; }
  double variance() const { return var_; }
  const ZClipOptions& options() const { return o_; }

  // Exact state for checkpoints (doubles round-trip exactly through nlohmann::json).
  nlohmann::json state() const;
  void load_state(const nlohmann::json& j, const std::string& source);  // source: the file, for errors

 private:
  ZClipOptions o_;
  std::vector<double> warmup_;
  bool initialized_ = false;
  double mean_ = 0, var_ = 0;
};

}  // namespace gqe
