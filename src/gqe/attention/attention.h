// Attention blocks: the GQA baseline and GQE. Each forward reads as the method; which kernels compute the
// pieces (CPU, CUDA or reference) is chosen in one place, attention_path_for (attention_path.h).
#pragma once
#include <torch/nn/module.h>
#include "gqe/attention/kv_cache.h"
#include "gqe/attention/linear.h"
#include "gqe/attention/router.h"
#include "gqe/core/config.h"

namespace gqe {

struct AttentionResult {
  at::Tensor y;         // [B, T, d]
  at::Tensor aux_loss;  // scalar load-balancing loss of this layer (zero for GQA)
};

class AttentionBlock : public torch::nn::Module {
 public:
  // x: [B, T, d] (after the pre-norm), tokens at positions cache.length() .. +T-1.
  // cache: appended to when given (decoding); nullptr for a full causal forward.
  virtual AttentionResult forward(const at::Tensor& x, LayerKVCache* cache) = 0;
};

// Grouped-query attention: N query heads, head h attends against KV head h / (N/G).
// Parameters: q_proj [N*d_h, d], k_proj [G*d_h, d], v_proj [G*d_h, d], o_proj [d, N*d_h].
class GQAAttention : public AttentionBlock {
 public:
  explicit GQAAttention(const ModelConfig& cfg, WeightInit init = WeightInit::random);
  AttentionResult forward(const at::Tensor& x, LayerKVCache* cache) override;

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  AttentionConfig a_;
  double rope_theta_;
  bool rope_;
};

// Grouped Query Experts (docs/method.md). Expert E[g,m] owns rows [(g*M+m)*d_h, (g*M+m+1)*d_h) of q_proj.
// Parameters: q_proj [N*d_h, d], k_proj/v_proj [G*d_h, d], router [G*M, d] (zero-initialised),
// shared_q_proj [d_h, d] (variant gqe only), o_proj [d, slots*d_h].
class GQEAttention : public AttentionBlock {
 public:
  explicit GQEAttention(const ModelConfig& cfg, WeightInit init = WeightInit::random);
  AttentionResult forward(const at::Tensor& x, LayerKVCache* cache) override;

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  Linear router{nullptr}, shared_q_proj{nullptr};

  // Routing of the last forward call, detached, for analytics: [B, T, G, M] and [B, T, G, k].
  at::Tensor last_router_probs, last_selected;
  // Forces a routing (for finite-difference checks where top-k is discontinuous): [B, T, G, k] int64.
  at::Tensor forced_selection;

 private:
  AttentionConfig a_;
  double rope_theta_;
  bool rope_;
};

std::shared_ptr<AttentionBlock> make_attention(const ModelConfig& cfg, WeightInit init = WeightInit::random);

}  // namespace gqe
