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

void load_model_weights(LanguageModel& model, const std::string& path, const WeightLoadOptions& options) {
  load_model_weights(model, load_safetensors(path), path, options);
}

void load_model_weights(LanguageModel& model, const SafetensorsFile& file, const std::string& path,
                        const WeightLoadOptions& options) {
  std::set<std::string> seen;
  torch::NoGradGuard g;
  for (auto& p : model.named_parameters()) {
    const at::Tensor* t = file.find(p.key());
    if (!t) throw FormatError(path + ": missing tensor '" + p.key() + "' (shape " + c10::str(p.value().sizes()) + ")");
    if (t->sizes() != p.value().sizes())
      throw FormatError(path + ": tensor '" + p.key() + "' has shape " + c10::str(t->sizes()) + ", the model expects " +
                        c10::str(p.value().sizes()));
    // copy_ would convert any dtype silently (integers into float weights): the file must hold what the
    // model holds.
    if (t->scalar_type() != p.value().scalar_type())
      throw FormatError(path + ": tensor '" + p.key() + "' has dtype " + c10::toString(t->scalar_type()) +
                        ", the model expects " + c10::toString(p.value().scalar_type()));
    if (!options.allow_nonfinite && at::isFloatingType(t->scalar_type())) {
      const at::Tensor bad = at::logical_not(at::isfinite(*t)).reshape({-1});
      const int64_t n_bad = bad.sum().item<int64_t>();
      if (n_bad > 0)
        throw FormatError(path + ": tensor '" + p.key() + "' holds " + std::to_string(n_bad) +
                          " non-finite value(s) (NaN/Inf), the first at flat index " +
                          std::to_string(bad.nonzero().min().item<int64_t>()) +
                          "; refusing to load them (pass --allow-nonfinite-weights to load anyway)");
    }
    seen.insert(p.key());
  }
  for (const auto& [name, t] : file.tensors)
    if (!seen.count(name)) throw FormatError(path + ": unexpected tensor '" + name + "' (not a parameter of this model)");
  const auto stored = file.metadata.find("gqe_config");
  if (stored != file.metadata.end()) {
    const std::string source = path + " (metadata 'gqe_config')";
    const ConfigDifference d = first_config_difference(parse_model_config(stored->second, source), model.config());
    if (!d.field.empty())
      throw FormatError(path + ": field '" + d.field + "' of the model config saved with these weights is " + d.a +
                        ", " + options.config_source + " has " + d.b +
                        " (the weights and the config do not belong together)");
  }
  // Only a file that passed every check is copied: a refused load leaves the model as it was.
  for (auto& p : model.named_parameters()) p.value().copy_(*file.find(p.key()));
}

std::shared_ptr<LanguageModel> load_model_checkpoint(const std::string& dir, const WeightLoadOptions& options) {
  auto model = std::make_shared<LanguageModel>(load_model_config(dir + "/config.json"));
  WeightLoadOptions o = options;
  o.config_source = dir + "/config.json";
  load_model_weights(*model, dir + "/model.safetensors", o);
  return model;
}

}  // namespace gqe
