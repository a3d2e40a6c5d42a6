#include "gqe/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "gqe/core/error.h"

namespace gqe {

int64_t decay_steps(const ScheduleOptions& s) {
  return std::clamp<int64_t>(int64_t(std::llround(s.decay_fraction * double(s.total_steps))), 0, s.total_steps);
}

int64_t decay_start(const ScheduleOptions& s) { return s.total_steps - decay_steps(s); }

double wsd_learning_rate(const ScheduleOptions& s, int64_t step) {
  if (step < 0) step = 0;
  if (step < s.warmup_steps) return s.peak_lr * double(step + 1) / double(s.warmup_steps);
  const int64_t n_decay = decay_steps(s);
  const int64_t first_decay_step = decay_start(s);
  if (step < first_decay_step) return s.peak_lr;
  if (step >= s.total_steps || n_decay == 0) return n_decay == 0 && step < s.total_steps ? s.peak_lr : s.min_lr;
  // t in (0, 1]: 1 at the last step, so the run ends exactly on the floor.
  const double t = double(step - first_decay_step + 1) / double(n_decay);
  const double span = s.peak_lr - s.min_lr;
  switch (s.decay_shape) {
    case DecayShape::cosine: return s.min_lr + 0.5 * span * (1.0 + std::cos(M_PI * t));
    case DecayShape::sqrt: return s.peak_lr - span * std::sqrt(t);
    case DecayShape::linear: break;
  }
  return s.peak_lr - span * t;
}

void validate_schedule(const ScheduleOptions& s, const std::string& source) {
  auto fail = [&](const std::string& field, const std::string& msg) {
    throw ConfigError(source + ": field '" + field + "': " + msg);
  };
  if (!(s.peak_lr > 0) || !std::isfinite(s.peak_lr)) fail("lr", "expected a positive number, got " + std::to_string(s.peak_lr));
  if (!(s.min_lr >= 0) || s.min_lr > s.peak_lr)
    fail("min_lr", "expected 0 <= min_lr <= lr (" + std::to_string(s.peak_lr) + "), got " + std::to_string(s.min_lr));
  if (s.total_steps <= 0) fail("steps", "expected a positive step count, got " + std::to_string(s.total_steps));
  if (s.warmup_steps < 0) fail("warmup_steps", "expected >= 0, got " + std::to_string(s.warmup_steps));
  if (!(s.decay_fraction >= 0 && s.decay_fraction <= 1))
    fail("decay_fraction", "expected a number in [0, 1], got " + std::to_string(s.decay_fraction));
  if (s.warmup_steps + decay_steps(s) > s.total_steps)
    fail("warmup_steps", std::to_string(s.warmup_steps) + " warmup + " + std::to_string(decay_steps(s)) +
                             " decay steps exceed the " + std::to_string(s.total_steps) + " total steps");
}

}  // namespace gqe
