// Warmup-stable-decay (WSD) learning-rate schedule, as a pure function of the step.
//
//   steps [0, warmup)                 linear ramp: peak * (step + 1) / warmup
//   steps [warmup, total - decay)     plateau at peak
//   steps [total - decay, total)      decay from peak to the floor, reaching the floor at the last step
// where decay = round(decay_fraction * total). Shapes of the decay: "linear" (default), "cosine",
// "sqrt" (1 - sqrt: lr = peak - (peak - floor) * sqrt(t)). Steps >= total stay at the floor.
#pragma once
#include <cstdint>
#include <string>

#include "gqe/core/enum_names.h"

namespace gqe {

enum class DecayShape { linear, cosine, sqrt };
GQE_ENUM_NAMES(DecayShape, "decay shape", {DecayShape::linear, "linear"}, {DecayShape::cosine, "cosine"},
               {DecayShape::sqrt, "sqrt"})

struct ScheduleOptions {
  double peak_lr = 3e-3;
  double min_lr = 3e-4;           // the floor
  int64_t warmup_steps = 30;      // (a recipe's -1 means "10% of total_steps", see resolve_recipe)
  int64_t total_steps = 300;
  double decay_fraction = 0.2;    // of total_steps
  DecayShape decay_shape = DecayShape::linear;
};

int64_t decay_steps(const ScheduleOptions& s);
// The first step of the decay: total_steps - decay_steps (the study branches its budgets here).
int64_t decay_start(const ScheduleOptions& s);
double wsd_learning_rate(const ScheduleOptions& s, int64_t step);
// Throws gqe::ConfigError (naming `source` and the field) when the schedule is not well formed.
void validate_schedule(const ScheduleOptions& s, const std::string& source);

}  // namespace gqe
