#include "gqe/train/train_checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"
#include "gqe/core/run_dir.h"
#include "gqe/io/checkpoint.h"
#include "gqe/io/safetensors.h"

namespace gqe {

namespace {

// Test hook: GQE_TEST_KILL_IN_CHECKPOINT=N makes the process SIGKILL itself halfway through writing its
// N-th checkpoint (weights written, optimizer state not yet), to prove that crashes cannot corrupt runs.
void maybe_die_mid_write() {
  static int count = 0;
  static const char* env = std::getenv("GQE_TEST_KILL_IN_CHECKPOINT");
  if (env && ++count == std::atoi(env)) ::raise(SIGKILL);
}

bool is_step_dir(const std::string& n) { return n.rfind("step-", 0) == 0; }

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", (long long)step);
  return buf;
}

std::string write_train_checkpoint(const std::string& run_dir, int64_t step, LanguageModel& model,
                                   const std::vector<std::pair<std::string, at::Tensor>>& optimizer_tensors,
                                   const at::Tensor& rng_state, const nlohmann::json& state, int64_t keep) {
  fs::mkdirs(run_dir);
  const std::string root = run_dir + "/checkpoints";
  fs::mkdirs(root);
  const std::string name = checkpoint_name(step);
  const std::string tmp = root + "/.tmp-" + name + "-" + std::to_string(::getpid());
  const std::string final_dir = root + "/" + name;
  if (fs::exists(tmp)) fs::remove_tree(tmp);
  fs::mkdirs(tmp);

  save_model_checkpoint(tmp, model, {{"step", std::to_string(step)}});
  maybe_die_mid_write();
  auto tensors = optimizer_tensors;
  if (rng_state.defined()) tensors.emplace_back("rng/cpu", rng_state);
  save_safetensors(tmp + "/optimizer.safetensors", tensors, {{"step", std::to_string(step)}});
  // trainer_state.json last: its presence marks a complete checkpoint even inside the directory.
  fs::write_file_atomic(tmp + "/trainer_state.json", state.dump(1) + "\n");
  fs::fsync_dir(tmp);

  if (fs::exists(final_dir)) {  // re-saving the same step (e.g. after a resume): replace it
    const std::string old = root + "/.old-" + name + "-" + std::to_string(::getpid());
    if (std::rename(final_dir.c_str(), old.c_str()) != 0) throw Error(final_dir + ": cannot move aside: " + std::strerror(errno));
    fs::remove_tree(old);
  }
  if (std::rename(tmp.c_str(), final_dir.c_str()) != 0)
    throw Error(final_dir + ": cannot rename checkpoint into place: " + std::strerror(errno));
  fs::fsync_dir(root);
  fs::write_file_atomic(root + "/latest", name + "\n");
  fs::fsync_dir(root);

  // Keep the newest `keep` checkpoints; temporaries of crashed writers go too, never a live writer's.
  std::vector<std::string> steps;
  for (const auto& n : fs::list_dir(root))
    if (is_step_dir(n)) steps.push_back(n);
  remove_stale_temp_files(root);
  for (size_t i = 0; i + size_t(std::max<int64_t>(keep, 1)) < steps.size(); ++i)
    if (steps[i] != name) fs::remove_tree(root + "/" + steps[i]);
  return final_dir;
}

std::string find_train_checkpoint(const std::string& path) {
  if (fs::exists(path + "/trainer_state.json")) return path;
  const std::string root = path + "/checkpoints";
  if (fs::exists(root + "/latest")) {
    std::string name = fs::read_file(root + "/latest");
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    if (fs::exists(root + "/" + name + "/trainer_state.json")) return root + "/" + name;
  }
  auto names = fs::list_dir(root);
  for (auto it = names.rbegin(); it != names.rend(); ++it)
    if (is_step_dir(*it) && fs::exists(root + "/" + *it + "/trainer_state.json")) return root + "/" + *it;
  throw Error(path + ": no training checkpoint here (expected " + path + "/trainer_state.json or " + root +
              "/step-*/trainer_state.json)");
}

TrainCheckpoint read_train_checkpoint(const std::string& dir, LanguageModel& model, const WeightLoadOptions& options) {
  TrainCheckpoint c;
  const std::string state_path = dir + "/trainer_state.json";
  c.state = parse_json(fs::read_file(state_path), state_path);
  try {
    if (c.state.at("format").get<std::string>() != "gqe-train-state")
      throw FormatError(state_path + ": field 'format': expected \"gqe-train-state\"");
    c.step = json_integer<int64_t>(c.state, "step", state_path, "", 0);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(state_path + ": " + e.what());
  }
  WeightLoadOptions o = options;
  o.config_source = "the model config of this run";
  load_model_weights(model, dir + "/model.safetensors", o);
  SafetensorsFile opt = load_safetensors(dir + "/optimizer.safetensors");
  for (auto& [n, t] : opt.tensors) {
    if (n == "rng/cpu") c.rng_state = t;
    else c.optimizer_tensors.emplace_back(n, t);
  }
  return c;
}

}  // namespace gqe
