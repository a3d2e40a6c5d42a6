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
// Copies the weights of `path` (a .safetensors file) into `model`: every parameter must be present with
// its exact shape and no unknown tensor may be there. Throws gqe::FormatError otherwise.
void load_model_weights(LanguageModel& model, const std::string& path);
// The same for tensors already read; `source` names them in errors.
void load_model_weights(LanguageModel& model, const SafetensorsFile& file, const std::string& source);
// Reads dir/config.json and dir/model.safetensors.
std::shared_ptr<LanguageModel> load_model_checkpoint(const std::string& dir);

}  // namespace gqe
