// Helpers shared by the test suites: small configs, randomised routers, tensor comparisons.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "gqe/core/config.h"
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
  c.attention.kind = kind;
  c.attention.num_heads = N;
  c.attention.num_kv_heads = G;
  c.attention.head_dim = head_dim;
  c.attention.top_k = k;
  c.attention.variant = variant;
  return c;
}

// The router starts at zero (every token picks expert 0); tests that need real routing randomise it.
inline void randomise_routers(LanguageModel& m, double scale = 1.0) {
  torch::NoGradGuard g;
  for (auto& l : m.gqe_layers()) l->router->weight.normal_(0.0, scale);
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

}  // namespace gqe::test
