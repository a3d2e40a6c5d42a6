// A model checkpoint is a directory: config.json (the model config) + model.safetensors (weights,
// named as in model/transformer.h). Both are written atomically.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "gqe/io/safetensors.h"
#include "gqe/model/transformer.h"

namespace gqe {

void save_model_checkpoint(const std::string& dir, LanguageModel& model,
                           const std::map<std::string, std::string>& metadata = {});
struct WeightLoadOptions {
  // NaN/Inf weights are refused by default: a diverged run's checkpoint would otherwise generate garbage
  // and score as a plausible model. The commands that load checkpoints set this from
  // --allow-nonfinite-weights.
  bool allow_nonfinite = false;
  // Names the config the model was built from in messages (e.g. "DIR/config.json").
  std::string config_source = "the model config";
  // The parameters take the file's tensors' memory instead of a copy of it (set by the path overload,
  // whose file is its own; the caller's tensors are copied).
  bool share_storage = false;
};

// Copies the weights of `path` (a .safetensors file) into `model`: every parameter must be present with
// its exact shape and dtype, no unknown tensor may be there, every value must be finite (unless allowed),
// and the model config stored in the file's metadata ("gqe_config", written by save_model_checkpoint)
// must match the model's config (core/config.h first_config_difference). Throws gqe::FormatError otherwise.
void load_model_weights(LanguageModel& model, const std::string& path, const WeightLoadOptions& options = {});
// The same for tensors already read; `source` names them in errors.
void load_model_weights(LanguageModel& model, const SafetensorsFile& file, const std::string& source,
                        const WeightLoadOptions& options = {});
// Reads dir/config.json and dir/model.safetensors: the model is built uninitialised (WeightInit::none) and its
// parameters are the mapped file's memory.
std::shared_ptr<LanguageModel> load_model_checkpoint(const std::string& dir, const WeightLoadOptions& options = {});

}  // namespace gqe
