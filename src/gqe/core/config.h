// Model configuration: a Hugging Face style config.json for GQE and GQA decoder LMs.
// Torch-free, so the CLI's `info` and the tests can use it without libtorch headers.
#pragma once
#include <cstdint>
#include <string>

#include "gqe/core/enum_names.h"

namespace gqe {

// The enumerated config fields, parsed once from their JSON spelling (core/enum_names.h).
enum class AttentionKind { gqa, gqe };
enum class GqeVariant { gqe, hard_concat, weighted_concat };
enum class AttentionImplementation { fast, reference };
enum class NormType { rmsnorm, layernorm };
enum class MlpType { swiglu, gelu };
enum class PositionEmbedding { rope, none };

GQE_ENUM_NAMES(AttentionKind, "attention kind", {AttentionKind::gqa, "gqa"}, {AttentionKind::gqe, "gqe"})
GQE_ENUM_NAMES(GqeVariant, "GQE variant", {GqeVariant::gqe, "gqe"}, {GqeVariant::hard_concat, "hard_concat"},
               {GqeVariant::weighted_concat, "weighted_concat"})
GQE_ENUM_NAMES(AttentionImplementation, "attention implementation", {AttentionImplementation::fast, "fast"},
               {AttentionImplementation::reference, "reference"})
GQE_ENUM_NAMES(NormType, "norm type", {NormType::rmsnorm, "rmsnorm"}, {NormType::layernorm, "layernorm"})
GQE_ENUM_NAMES(MlpType, "MLP type", {MlpType::swiglu, "swiglu"}, {MlpType::gelu, "gelu"})
GQE_ENUM_NAMES(PositionEmbedding, "position embedding", {PositionEmbedding::rope, "rope"},
               {PositionEmbedding::none, "none"})

// The attention block. kind "gqa": N query heads over G KV heads (MHA: G=N, MQA: G=1).
// kind "gqe": N routed query-head experts, G KV heads, M=N/G experts per group, top-k per group.
struct AttentionConfig {
  AttentionKind kind = AttentionKind::gqe;
  int64_t num_heads = 16;         // N: query heads (GQA) or routed experts (GQE)
  int64_t num_kv_heads = 8;       // G: KV heads = groups
  int64_t head_dim = 64;          // d_h, same for every head
  int64_t top_k = 1;              // k: experts per group per token (GQE only)
  GqeVariant variant = GqeVariant::gqe;  // GQE only
  double aux_loss_weight = 0.01;  // alpha of the load-balancing loss (GQE only)
  double router_denominator_eps = 1e-9;  // clamp of the renormalisation denominator
  // "fast": the flash-attention kernel and (GQE) sparse routed projection; "reference": plain libtorch ops
  // (materialises every score and, for GQE, all N query heads). Same results; fp32 only on the fast path.
  AttentionImplementation implementation = AttentionImplementation::fast;

  bool is_gqe() const { return kind == AttentionKind::gqe; }
  int64_t experts_per_group() const { return num_heads / num_kv_heads; }  // M
  // d_h-wide inputs into W_O: N for GQA; kG + 2 for gqe; kG for the ablations.
  int64_t num_slots() const;
  // Query-attention computations per token: N for GQA; kG + 1 for gqe; kG for the ablations.
  int64_t active_query_heads() const;
  bool has_shared_head() const { return is_gqe() && variant == GqeVariant::gqe; }
  bool has_weighted_slot() const { return is_gqe() && variant == GqeVariant::gqe; }
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
  NormType norm_type = NormType::rmsnorm;
  MlpType mlp_type = MlpType::swiglu;
  PositionEmbedding position_embedding = PositionEmbedding::rope;
  double initializer_range = 0.02;     // std of embeddings and MLP weights
  AttentionConfig attention;
};

// Parse and validate; `source` names the file in error messages. Throws gqe::ConfigError.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
ModelConfig load_model_config(const std::string& path);
std::string model_config_to_json(const ModelConfig& cfg, int indent = 2);
void validate_model_config(const ModelConfig& cfg, const std::string& source);

// The first field (alphabetically, "attention.rope_theta" style) in which two configs differ in a
// way that changes what the weights compute, with both values as JSON text; empty `field` when none.
// Training-only knobs (initializer_range, attention.aux_loss_weight) and the kernel choice
// (attention.implementation, same results) are not compared.
struct ConfigDifference {
  std::string field, a, b;
};
ConfigDifference first_config_difference(const ModelConfig& a, const ModelConfig& b);

}  // namespace gqe
