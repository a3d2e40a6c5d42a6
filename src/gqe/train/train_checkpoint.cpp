#include "gqe/train/train_checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "gqe/core/error.h"
#include "gqe/io/checkpoint.h"
#include "gqe/io/safetensors.h"

namespace gqe {

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

void make_dir(const std::string& p) {
  if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST)
    throw Error(p + ": cannot create directory: " + std::strerror(errno));
}

void fsync_dir(const std::string& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some filesystems do not allow opening directories
  ::fsync(fd);
  ::close(fd);
}

void remove_tree(const std::string& p) {
  DIR* d = ::opendir(p.c_str());
  if (d) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      const std::string c = p + "/" + n;
      struct stat st;
      if (::lstat(c.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(c);
      else ::unlink(c.c_str());
    }
    ::closedir(d);
  }
  ::rmdir(p.c_str());
}

std::vector<std::string> list_dir(const std::string& p) {
  std::vector<std::string> out;
  DIR* d = ::opendir(p.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) out.push_back(e->d_name);
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_text(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error(p + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

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
  make_dir(run_dir);
  const std::string root = run_dir + "/checkpoints";
  make_dir(root);
  const std::string name = checkpoint_name(step);
  const std::string tmp = root + "/.tmp-" + name + "-" + std::to_string(::getpid());
  const std::string final_dir = root + "/" + name;
  if (exists(tmp)) remove_tree(tmp);
  make_dir(tmp);

  save_model_checkpoint(tmp, model, {{"step", std::to_string(step)}});
  maybe_die_mid_write();
  auto tensors = optimizer_tensors;
  if (rng_state.defined()) tensors.emplace_back("rng/cpu", rng_state);
  save_safetensors(tmp + "/optimizer.safetensors", tensors, {{"step", std::to_string(step)}});
  // trainer_state.json last: its presence marks a complete checkpoint even inside the directory.
  write_file_atomic(tmp + "/trainer_state.json", state.dump(1) + "\n");
  fsync_dir(tmp);

  if (exists(final_dir)) {  // re-saving the same step (e.g. after a resume): replace it
    const std::string old = root + "/.old-" + name + "-" + std::to_string(::getpid());
    if (std::rename(final_dir.c_str(), old.c_str()) != 0) throw Error(final_dir + ": cannot move aside: " + std::strerror(errno));
    remove_tree(old);
  }
  if (std::rename(tmp.c_str(), final_dir.c_str()) != 0)
    throw Error(final_dir + ": cannot rename checkpoint into place: " + std::strerror(errno));
  fsync_dir(root);
  write_file_atomic(root + "/latest", name + "\n");
  fsync_dir(root);

  // Keep the newest `keep` checkpoints; stale temporaries of crashed writers go too.
  std::vector<std::string> steps;
  for (const auto& n : list_dir(root)) {
    if (is_step_dir(n)) steps.push_back(n);
    else if (n.rfind(".tmp-", 0) == 0 || n.rfind(".old-", 0) == 0) remove_tree(root + "/" + n);
  }
  for (size_t i = 0; i + size_t(std::max<int64_t>(keep, 1)) < steps.size(); ++i)
    if (steps[i] != name) remove_tree(root + "/" + steps[i]);
  return final_dir;
}

std::string find_train_checkpoint(const std::string& path) {
  if (exists(path + "/trainer_state.json")) return path;
  const std::string root = path + "/checkpoints";
  if (exists(root + "/latest")) {
    std::string name = read_text(root + "/latest");
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    if (exists(root + "/" + name + "/trainer_state.json")) return root + "/" + name;
  }
  auto names = list_dir(root);
  for (auto it = names.rbegin(); it != names.rend(); ++it)
    if (is_step_dir(*it) && exists(root + "/" + *it + "/trainer_state.json")) return root + "/" + *it;
  throw Error(path + ": no training checkpoint here (expected " + path + "/trainer_state.json or " + root +
              "/step-*/trainer_state.json)");
}

TrainCheckpoint read_train_checkpoint(const std::string& dir, LanguageModel& model) {
  TrainCheckpoint c;
  const std::string state_path = dir + "/trainer_state.json";
  try {
    c.state = nlohmann::json::parse(read_text(state_path));
    if (c.state.at("format").get<std::string>() != "gqe-train-state")
      throw FormatError(state_path + ": field 'format': expected \"gqe-train-state\"");
    c.step = c.state.at("step").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(state_path + ": " + e.what());
  }
  load_model_weights(model, dir + "/model.safetensors");
  SafetensorsFile opt = load_safetensors(dir + "/optimizer.safetensors");
  for (auto& [n, t] : opt.tensors) {
    if (n == "rng/cpu") c.rng_state = t;
    else c.optimizer_tensors.emplace_back(n, t);
  }
  return c;
}

}  // namespace gqe
