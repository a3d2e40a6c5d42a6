// Model configuration: a Hugging Face style config.json for GQE and GQA decoder LMs.
// Torch-free, so the CLI's `info` and the tests can use it without libtorch headers.
#pragma once
#include <cstdint>
#include <string>

namespace gqe {

// The attention block. kind "gqa": N query heads over G KV heads (MHA: G=N, MQA: G=1).
// kind "gqe": N routed query-head experts, G KV heads, M=N/G experts per group, top-k per group.
struct AttentionConfig {
  std::string kind = "gqe";       // "gqa" | "gqe"
  int64_t num_heads = 16;         // N: query heads (GQA) or routed experts (GQE)
  int64_t num_kv_heads = 8;       // G: KV heads = groups
  int64_t head_dim = 64;          // d_h, same for every head
  int64_t top_k = 1;              // k: experts per group per token (GQE only)
  std::string variant = "gqe";    // "gqe" | "hard_concat" | "weighted_concat" (GQE only)
  double aux_loss_weight = 0.01;  // alpha of the load-balancing loss (GQE only)
  double router_denominator_eps = 1e-9;  // clamp of the renormalisation denominator
  // "fast": the flash-attention kernel and (GQE) sparse routed projection; "reference": plain libtorch ops
  // (materialises every score and, for GQE, all N query heads). Same results; fp32 only on the fast path.
  std::string implementation = "fast";

  bool is_gqe() const { return kind == "gqe"; }
  int64_t experts_per_group() const { return num_heads / num_kv_heads; }  // M
  // d_h-wide inputs into W_O: N for GQA; kG + 2 for gqe; kG for the ablations.
  int64_t num_slots() const;
  // Query-attention computations per token: N for GQA; kG + 1 for gqe; kG for the ablations.
  int64_t active_query_heads() const;
  bool has_shared_head() const { return is_gqe() && variant == "gqe"; }
  bool has_weighted_slot() const { return is_gqe() && variant == "gqe"; }
};

struct ModelConfig {
  int64_t vocab_size = 256;
  int64_t hidden_size = 1024;          // d
  int64_t num_hidden_layers = 12;
  int64_t intermediate_size = 2816;    // MLP width
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = true;
  std::string norm_type = "rmsnorm";   // "rmsnorm" | "layernorm"
  std::string mlp_type = "swiglu";     // "swiglu" | "gelu"
  std::string position_embedding = "rope";  // "rope" | "none"
  double initializer_range = 0.02;     // std of embeddings and MLP weights
  AttentionConfig attention;
};

// Parse and validate; `source` names the file in error messages. Throws gqe::ConfigError.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
ModelConfig load_model_config(const std::string& path);
std::string model_config_to_json(const ModelConfig& cfg, int indent = 2);
void validate_model_config(const ModelConfig& cfg, const std::string& source);

}  // namespace gqe
