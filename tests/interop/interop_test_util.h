// Helpers of the interop tests (tests/interop/): running tests/interop/hf_check.py ($GQE_PYTHON: torch,
// transformers, tokenizers, lm-eval), and checkpoints whose weights make every choice count. Running gqe and
// skipping without it or GQE_PYTHON: process_util.h, test_util.h.
#pragma once
#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <nlohmann/json.hpp>

#include "gqe/core/config.h"
#include "gqe/core/fs.h"
#include "gqe/io/checkpoint.h"
#include "gqe/model/transformer.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe::interop {

inline std::string hf_check_script() { return test::source_dir() + "/tests/interop/hf_check.py"; }

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
  // (its stdin is /dev/null, as for every test::run: it never waits on a prompt)
  const test::CommandRun r = test::run({test::python(), hf_check_script(), verb, dir + "/" + verb + "_manifest.json",
                                        dir + "/" + verb + "_results.json"},
                                       test::RunOptions().deadline(900));
  if (r.rc != 0) throw std::runtime_error("hf_check.py " + verb + " failed: " + test::describe(r));
  return nlohmann::json::parse(fs::read_file(dir + "/" + verb + "_results.json"));
}

}  // namespace gqe::interop
