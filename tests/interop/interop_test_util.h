// Helpers of the interop tests (tests/interop/): running the gqe executable and tests/interop/hf_check.py
// ($GQE_PYTHON: torch, transformers, tokenizers, lm-eval), and checkpoints whose weights make every choice
// count.
#pragma once
#include <ATen/ATen.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <nlohmann/json.hpp>

#include "gqe/core/config.h"
#include "gqe/core/fs.h"
#include "gqe/io/checkpoint.h"
#include "gqe/model/transformer.h"

namespace gqe::interop {

struct CommandRun {
  int rc;
  std::string out;  // stdout (stderr too when asked)
};

inline CommandRun run(const std::string& cmd, bool with_stderr = true) {
  CommandRun r{0, ""};
  FILE* p = ::popen((cmd + (with_stderr ? " 2>&1" : "")).c_str(), "r");
  if (!p) return {-1, "popen failed: " + cmd};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

inline std::string gqe_bin() { return env("GQE_BIN"); }

inline bool have_gqe_bin() { return !gqe_bin().empty() && ::access(gqe_bin().c_str(), X_OK) == 0; }

// Why the Python-side tests cannot run here ("" when they can).
inline std::string python_missing() {
  if (env("GQE_PYTHON").empty())
    return "GQE_PYTHON is empty: configure with -DGQE_PYTHON=<python with scripts/python-requirements.txt>";
  if (!have_gqe_bin()) return "GQE_BIN not set or not built";
  return "";
}

inline std::string hf_check_script() { return env("GQE_SOURCE_DIR") + "/tests/interop/hf_check.py"; }

// A checkpoint with decisive weights: N(0, embed_std) embeddings, N(0, 1) routers (the router starts at
// zero, which routes every token to expert 0), LayerNorm biases non-zero.
inline std::string make_checkpoint(const std::string& dir, const ModelConfig& cfg, uint64_t seed, double embed_std = 1.0) {
  at::manual_seed(int64_t(seed));
  LanguageModel m(cfg);
  {
    torch::NoGradGuard g;
    for (auto& p : m.named_parameters()) {
      const std::string& n = p.key();
      if (n == "embed_tokens.weight") p.value().normal_(0.0, embed_std);
      if (n.find("router") != std::string::npos) p.value().normal_(0.0, 1.0);
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".bias") == 0) p.value().normal_(0.0, 0.1);
    }
  }
  save_model_checkpoint(dir, m);
  return dir;
}

// hf_check.py VERB on a manifest written into DIR; its JSON results.
inline nlohmann::json run_python(const std::string& verb, const std::string& dir, const nlohmann::json& manifest) {
  fs::write_file_atomic(dir + "/" + verb + "_manifest.json", manifest.dump(2));
  const CommandRun r = run(env("GQE_PYTHON") + " " + hf_check_script() + " " + verb + " " + dir + "/" + verb +
                           "_manifest.json " + dir + "/" + verb + "_results.json < /dev/null");  // never waits on a prompt
  if (r.rc != 0) throw std::runtime_error("hf_check.py " + verb + " failed (rc " + std::to_string(r.rc) + "):\n" + r.out);
  return nlohmann::json::parse(fs::read_file(dir + "/" + verb + "_results.json"));
}

}  // namespace gqe::interop
