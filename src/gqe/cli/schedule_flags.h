// The learning-rate schedule's flags, which gqe train and gqe info --schedule read the same way so that
// the schedule info prints is the one train follows.
#pragma once
#include <set>
#include <string>

#include "gqe/cli/args.h"
#include "gqe/train/recipe.h"

namespace gqe::cli {

// Their names, for a command's list of options.
const std::set<std::string>& schedule_flag_names();  // lr, min-lr, warmup, decay-fraction, decay-shape

// Applies those given over `r`: --lr without --min-lr sets the floor to a tenth of the peak unless a recipe
// file (`recipe_file_given`) set it; --warmup in steps replaces a recipe's warmup in tokens.
void apply_schedule_flags(const Args& args, TrainRecipe& r, bool recipe_file_given);

}  // namespace gqe::cli
