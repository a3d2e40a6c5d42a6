// Parameter counts and FLOPs of a model config, computed from the config alone (no libtorch).
// Tests check the parameter counts against the real module's parameters.
#pragma once
#include <cstdint>
#include <string>

#include "gqe/core/config.h"

namespace gqe {

struct ParamCounts {
  int64_t embedding = 0;        // token embedding
  int64_t attn_q = 0;           // all query projections (every expert owns one; + shared head query)
  int64_t attn_kv = 0;          // K and V projections
  int64_t attn_o = 0;           // W_O
  int64_t attn_router = 0;      // router (GQE)
  int64_t mlp = 0;
  int64_t norms = 0;
  int64_t lm_head = 0;          // 0 when tied to the embedding
  int64_t total() const { return embedding + attn_q + attn_kv + attn_o + attn_router + mlp + norms + lm_head; }
  int64_t attention() const { return attn_q + attn_kv + attn_o + attn_router; }
};

// Throws gqe::ConfigError naming `source` and the sizes when a count (or the total) does not fit int64.
ParamCounts count_parameters(const ModelConfig& cfg, const std::string& source = "model config");

// Forward FLOPs of one token in one layer's attention at context length L (the token attends to L keys).
// A multiply-add counts 2.
struct AttentionFlops {
  double q_proj = 0, kv_proj = 0, router = 0, o_proj = 0;  // projections (per token, independent of L)
  double core = 0;                                          // QK^T and PV: 2*2*active_heads*d_h*L
  double total() const { return q_proj + kv_proj + router + o_proj + core; }
};
AttentionFlops attention_flops_per_token(const ModelConfig& cfg, int64_t context_len);

// Forward FLOPs of one token through the whole model, averaged over a causal prefill of L tokens (token t
// attends to t keys). Training costs about 3x this (forward + backward); equal-compute comparisons use it.
struct ModelFlops {
  double attention = 0, mlp = 0, lm_head = 0;  // attention: every layer, incl. projections and router
  double total() const { return attention + mlp + lm_head; }
};
ModelFlops model_flops_per_token(const ModelConfig& cfg, int64_t prefill_len);

// Human-readable summary printed by `gqe info`.
std::string describe_model(const ModelConfig& cfg, int64_t context_len);

}  // namespace gqe
