#include "gqe/io/checkpoint.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "gqe/core/error.h"
#include "gqe/io/safetensors.h"

namespace gqe {

namespace {
void make_dirs(const std::string& dir) {
  std::string cur;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        throw Error(dir + ": cannot create directory: " + std::strerror(errno));
    }
    if (i < dir.size()) cur.push_back(dir[i]);
  }
}
}  // namespace

void save_model_checkpoint(const std::string& dir, LanguageModel& model,
                           const std::map<std::string, std::string>& metadata) {
  make_dirs(dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model.named_parameters()) tensors.emplace_back(p.key(), p.value());
  auto meta = metadata;
  meta["format"] = "pt";
  meta["gqe_config"] = model_config_to_json(model.config(), -1);
  save_safetensors(dir + "/model.safetensors", tensors, meta);
  write_file_atomic(dir + "/config.json", model_config_to_json(model.config()) + "\n");
}

void load_model_weights(LanguageModel& model, const std::string& path) {
  SafetensorsFile file = load_safetensors(path);
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
