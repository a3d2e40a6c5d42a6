#include "gqe/io/checkpoint.h"

#include <set>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/io/safetensors.h"

namespace gqe {

void save_model_checkpoint(const std::string& dir, LanguageModel& model,
                           const std::map<std::string, std::string>& metadata) {
  fs::mkdirs(dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model.named_parameters()) tensors.emplace_back(p.key(), p.value());
  auto meta = metadata;
  meta["format"] = "pt";
  meta["gqe_config"] = model_config_to_json(model.config(), -1);
  save_safetensors(dir + "/model.safetensors", tensors, meta);
  fs::write_file_atomic(dir + "/config.json", model_config_to_json(model.config()) + "\n");
}

void load_model_weights(LanguageModel& model, const std::string& path) {
  load_model_weights(model, load_safetensors(path), path);
}

void load_model_weights(LanguageModel& model, const SafetensorsFile& file, const std::string& path) {
  std::set<std::string> seen;
  torch::NoGradGuard g;
  for (auto& p : model.named_parameters()) {
    const at::Tensor* t = file.find(p.key());
    if (!t) throw FormatError(path + ": missing tensor '" + p.key() + "' (shape " + c10::str(p.value().sizes()) + ")");
    if (t->sizes() != p.value().sizes())
      throw FormatError(path + ": tensor '" + p.key() + "' has shape " + c10::str(t->sizes()) + ", the model expects " +
                        c10::str(p.value().sizes()));
    p.value().copy_(*t);
    seen.insert(p.key());
  }
  for (const auto& [name, t] : file.tensors)
    if (!seen.count(name)) throw FormatError(path + ": unexpected tensor '" + name + "' (not a parameter of this model)");
}

std::shared_ptr<LanguageModel> load_model_checkpoint(const std::string& dir) {
  auto model = std::make_shared<LanguageModel>(load_model_config(dir + "/config.json"));
  load_model_weights(*model, dir + "/model.safetensors");
  return model;
}

}  // namespace gqe
