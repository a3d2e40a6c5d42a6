// Helpers shared by the test suites: small configs, randomised routers, tensor comparisons, and the test
// environment (the gqe executable, the source tree, GQE_PYTHON, scratch folders), read here only. Running
// the gqe executable and other programs: process_util.h.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gqe/core/config.h"
#include "gqe/core/error.h"
#include "gqe/model/transformer.h"

namespace gqe::test {

inline ModelConfig small_config(const std::string& kind, int64_t N, int64_t G, int64_t k = 1,
                                const std::string& variant = "gqe", int64_t head_dim = 8, int64_t d = 32) {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = d;
  c.num_hidden_layers = 2;
  c.intermediate_size = 40;
  c.max_position_embeddings = 256;
  c.attention.kind = *enum_from_string<AttentionKind>(kind);
  c.attention.num_heads = N;
  c.attention.num_kv_heads = G;
  c.attention.head_dim = head_dim;
  c.attention.top_k = k;
  c.attention.variant = *enum_from_string<GqeVariant>(variant);
  return c;
}

// The attention shapes every path is checked on: GQA (MHA and MQA too) and each GQE variant at k = 1 and
// 2, G = 1 and G = N, and the paper's head layout.
inline std::vector<ModelConfig> attention_test_configs() {
  std::vector<ModelConfig> out = {small_config("gqa", 8, 4), small_config("gqa", 4, 4), small_config("gqa", 4, 1)};
  for (const char* v : {"gqe", "hard_concat", "weighted_concat"}) {
    out.push_back(small_config("gqe", 8, 4, 1, v));
    out.push_back(small_config("gqe", 8, 2, 2, v));
    out.push_back(small_config("gqe", 4, 1, 2, v));  // G = 1
    out.push_back(small_config("gqe", 4, 4, 1, v));  // G = N: one expert per group
  }
  out.push_back(small_config("gqe", 16, 8, 1, "gqe", 64, 64));  // paper head layout, d_h 64
  return out;
}

// The router starts at zero (every token picks expert 0); tests that need real routing randomise it.
inline void randomise_routers(LanguageModel& m, double scale = 1.0) {
  torch::NoGradGuard g;
  for (auto& l : m.gqe_layers()) l->router->weight.normal_(0.0, scale);
}

// Copies every parameter of `from` into `to` (same architecture; copy_ converts device and dtype).
inline void copy_parameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard g;
  auto src = from.named_parameters();
  for (auto& p : to.named_parameters()) p.value().copy_(src[p.key()]);
}

// N(0, 1) weights for every GQE router in `m` (a module at any level: attention block, layer, model).
inline void randomise_router_weights(torch::nn::Module& m) {
  torch::NoGradGuard g;
  const std::string suffix = "router.weight";
  for (auto& p : m.named_parameters())
    if (p.key().size() >= suffix.size() && p.key().compare(p.key().size() - suffix.size(), suffix.size(), suffix) == 0)
      p.value().normal_(0.0, 1.0);
}

inline double max_rel_diff(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

// The test environment, read here and nowhere else: CTest sets GQE_BIN, GQE_SOURCE_DIR, GQE_PYTHON and
// GQE_TEST_TMP for every test executable (CMakeLists.txt); run by hand, set them likewise.

// $NAME, "" when it is not set.
inline std::string env_var(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The gqe executable ($GQE_BIN), "" when GQE_BIN is not set to an executable (the CLI tests then skip, through
// GQE_SKIP_WITHOUT_BIN).
inline std::string gqe_bin() {
  const std::string bin = env_var("GQE_BIN");
  return !bin.empty() && ::access(bin.c_str(), X_OK) == 0 ? bin : "";
}
inline bool gqe_bin_available() { return !gqe_bin().empty(); }

// The source tree ($GQE_SOURCE_DIR), "." when it is not set (a run from the repository's root).
inline std::string source_dir() {
  const std::string dir = env_var("GQE_SOURCE_DIR");
  return dir.empty() ? "." : dir;
}

// A Python with scripts/python-requirements.txt installed ($GQE_PYTHON: torch, transformers, tokenizers,
// safetensors, lm-eval), "" when there is none (the tests that compare with it then skip, through
// GQE_SKIP_WITHOUT_PYTHON).
inline std::string python() { return env_var("GQE_PYTHON"); }

// A fresh, empty folder $GQE_TEST_TMP/NAME (/tmp/NAME when GQE_TEST_TMP is not set); NAME may hold '/'.
inline std::string scratch_dir(const std::string& name) {
  const std::string base = env_var("GQE_TEST_TMP");
  const std::string dir = (base.empty() ? "/tmp" : base) + "/" + name;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!ec) std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir + ": " + ec.message());
  return dir;
}

// Whether PROGRAM is an executable in one of $PATH's folders.
inline bool have_program(const std::string& program) {
  const std::string path = env_var("PATH");
  for (size_t at = 0; at <= path.size();) {
    const size_t end = std::min(path.find(':', at), path.size());
    const std::string dir = end > at ? path.substr(at, end - at) : ".";
    if (::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
    at = end + 1;
  }
  return false;
}

inline constexpr const char* kNoGqeBin = "GQE_BIN is not set to the gqe executable (CTest sets it)";
inline constexpr const char* kNoPython =
    "GQE_PYTHON is not set: configure with -DGQE_PYTHON=<a Python with scripts/python-requirements.txt>";

}  // namespace gqe::test

// The first statement of a test (or of a helper it returns from) that needs the gqe executable / GQE_PYTHON:
// skips with the one message for it otherwise. `<< more` adds to the message.
#define GQE_SKIP_WITHOUT_BIN() \
  if (::gqe::test::gqe_bin_available()) {} else GTEST_SKIP() << ::gqe::test::kNoGqeBin
#define GQE_SKIP_WITHOUT_PYTHON() \
  if (!::gqe::test::python().empty()) {} else GTEST_SKIP() << ::gqe::test::kNoPython

namespace gqe::test {

// A fresh scratch_dir(NAME) holding the inputs of a small `gqe train` run: model.json, a byte-level GQE model
// (small_config("gqe", 4, 2) over the 256 byte ids), and text.txt, LINES lines "BEFORE<line number>AFTER".
inline std::string train_inputs_dir(const std::string& name, int lines, const std::string& before,
                                    const std::string& after = "\n") {
  const std::string dir = scratch_dir(name);
  std::ofstream text(dir + "/text.txt");
  for (int i = 0; i < lines; ++i) text << before << i << after;
  ModelConfig c = small_config("gqe", 4, 2);
  c.vocab_size = 256;
  std::ofstream(dir + "/model.json") << model_config_to_json(c);
  return dir;
}

// The names in folder DIR that contain TEXT (what a writer left behind: "tmp", "prepare.tmp"), sorted.
inline std::vector<std::string> entries_containing(const std::string& dir, const std::string& text) {
  std::vector<std::string> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find(text) != std::string::npos) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The message of the gqe::Error `f` throws, "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Sets or clears DIR's immutable attribute (what chattr +i / -i do); false where that does not work here.
inline bool set_immutable(const std::string& dir, bool on) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
  ok = ok && ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  ::close(fd);
  return ok;
}

// Makes `dir` unwritable for this process: chmod for an ordinary user, the immutable attribute for root
// (which chmod does not stop). Returns false when neither works here; undo with make_writable.
inline bool make_unwritable(const std::string& dir) {
  if (::geteuid() != 0) return ::chmod(dir.c_str(), 0555) == 0;
  return set_immutable(dir, true);
}
inline void make_writable(const std::string& dir) {
  ::chmod(dir.c_str(), 0755);
  set_immutable(dir, false);
}

}  // namespace gqe::test
