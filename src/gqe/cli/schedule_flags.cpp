#include "gqe/cli/schedule_flags.h"

namespace gqe::cli {

const std::set<std::string>& schedule_flag_names() {
  static const std::set<std::string> names = {"lr", "min-lr", "warmup", "decay-fraction", "decay-shape"};
  return names;
}

void apply_schedule_flags(const Args& args, TrainRecipe& r, bool recipe_file_given) {
  ScheduleOptions& s = r.schedule;
  s.peak_lr = args.get_double("lr", s.peak_lr);
  if (args.has("min-lr")) s.min_lr = args.get_double("min-lr", 0);
  else if (args.has("lr") && !recipe_file_given) s.min_lr = s.peak_lr / 10;
  if (args.has("warmup")) {
    s.warmup_steps = args.get_int("warmup", 0, 0);
    r.warmup_tokens = -1;
  }
  s.decay_fraction = args.get_double("decay-fraction", s.decay_fraction);
  s.decay_shape = args.get_enum("decay-shape", s.decay_shape);
}

}  // namespace gqe::cli
