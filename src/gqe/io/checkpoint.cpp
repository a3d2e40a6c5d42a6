#include "gqe/io/checkpoint.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <set>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/io/safetensors.h"

namespace gqe {
namespace {

// How many values of t are NaN or Inf. float32 in one pass over the bits on every thread (a checkpoint is
// read once, at memory speed); other dtypes through libtorch.
int64_t count_nonfinite(const at::Tensor& t) {
  if (t.scalar_type() != at::kFloat || !t.is_contiguous() || !t.device().is_cpu())
    return at::logical_not(at::isfinite(t)).sum().item<int64_t>();
  const auto* bits = static_cast<const uint32_t*>(t.data_ptr());
  std::atomic<int64_t> bad{0};
  at::parallel_for(0, t.numel(), 1 << 16, [&](int64_t b, int64_t e) {
    int64_t n = 0;
    for (int64_t i = b; i < e; ++i) n += (bits[i] & 0x7f800000u) == 0x7f800000u;
    bad += n;
  });
  return bad.load();
}

}  // namespace

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
  WeightLoadOptions o = options;
  o.share_storage = true;  // the file's tensors are this call's alone
  load_model_weights(model, load_safetensors(path), path, o);
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
      const int64_t n_bad = count_nonfinite(*t);
      const auto bad = [&] { return at::logical_not(at::isfinite(*t)).reshape({-1}); };
      if (n_bad > 0)
        throw FormatError(path + ": tensor '" + p.key() + "' holds " + std::to_string(n_bad) +
                          " non-finite value(s) (NaN/Inf), the first at flat index " +
                          std::to_string(bad().nonzero().min().item<int64_t>()) +
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
  for (auto& p : model.named_parameters()) {
    const at::Tensor& t = *file.find(p.key());
    if (options.share_storage && t.is_contiguous() && p.value().device() == t.device())
      p.value().set_(t);  // the parameter takes the file's memory (mapped by load_safetensors): no copy
    else
      p.value().copy_(t);
  }
}

std::shared_ptr<LanguageModel> load_model_checkpoint(const std::string& dir, const WeightLoadOptions& options) {
  auto model = std::make_shared<LanguageModel>(load_model_config(dir + "/config.json"), WeightInit::none);
  WeightLoadOptions o = options;
  o.config_source = dir + "/config.json";
  load_model_weights(*model, dir + "/model.safetensors", o);
  return model;
}

}  // namespace gqe
