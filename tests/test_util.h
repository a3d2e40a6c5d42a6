// Helpers shared by the test suites: small configs, randomised routers, tensor comparisons.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
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

inline std::string scratch_dir(const std::string& name) {
  const char* base = std::getenv("GQE_TEST_TMP");
  std::string dir = std::string(base ? base : "/tmp") + "/" + name;
  std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot create " + dir);
  return dir;
}

// The gqe executable ($GQE_BIN), "" when GQE_BIN is not set to an executable (the CLI tests then skip).
inline std::string gqe_bin() {
  const char* bin = std::getenv("GQE_BIN");
  return bin && ::access(bin, X_OK) == 0 ? bin : "";
}
inline bool gqe_bin_available() { return !gqe_bin().empty(); }

// `gqe ARGS` (a shell command line tail) run from the folder `cwd`: exit status (-1 when killed by a
// signal) and stdout + stderr. `limits`: shell commands run first (e.g. "ulimit -v N"), in the shell that
// then becomes gqe.
struct CommandRun {
  int rc = -1;
  std::string out;
};
inline CommandRun run_gqe_command(const std::string& args, const std::string& cwd = ".",
                                  const std::string& limits = "") {
  const std::string cmd =
      "cd '" + cwd + "' && " + (limits.empty() ? "" : limits + "; exec ") + "'" + gqe_bin() + "' " + args + " 2>&1";
  CommandRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
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

// Makes `dir` unwritable for this process: chmod for an ordinary user, the immutable attribute for root
// (which chmod does not stop). Returns false when neither works here; undo with make_writable.
inline bool make_unwritable(const std::string& dir) {
  if (::geteuid() != 0) return std::system(("chmod 0555 '" + dir + "'").c_str()) == 0;
  return std::system(("chattr +i '" + dir + "' 2>/dev/null").c_str()) == 0;
}
inline void make_writable(const std::string& dir) {
  std::system(("chmod 0755 '" + dir + "'; chattr -i '" + dir + "' 2>/dev/null").c_str());
}

}  // namespace gqe::test
