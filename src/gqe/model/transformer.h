// The decoder-only language model: embedding, pre-norm blocks (norm -> attention, norm -> MLP, each
// residual), final norm, LM head (tied to the embedding by default).
//
// Parameter names (stable; the safetensors checkpoint uses them verbatim, see docs/checkpoints.md):
//   embed_tokens.weight                 [V, d]
//   layers.{i}.attn_norm.weight         [d]          (+ .bias with layernorm)
//   layers.{i}.attn.q_proj.weight       [N*d_h, d]   (GQE: expert (g,m) owns rows (g*M+m)*d_h ..)
//   layers.{i}.attn.k_proj.weight       [G*d_h, d]
//   layers.{i}.attn.v_proj.weight       [G*d_h, d]
//   layers.{i}.attn.router.weight       [G*M, d]     (GQE)
//   layers.{i}.attn.shared_q_proj.weight [d_h, d]    (GQE variant gqe)
//   layers.{i}.attn.o_proj.weight       [d, slots*d_h]
//   layers.{i}.mlp_norm.weight          [d]
//   layers.{i}.mlp.gate_proj.weight     [F, d]       (swiglu)
//   layers.{i}.mlp.up_proj.weight       [F, d]
//   layers.{i}.mlp.down_proj.weight     [d, F]
//   norm.weight                         [d]
//   lm_head.weight                      [V, d]       (only when tie_word_embeddings is false)
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include "gqe/attention/attention.h"
#include "gqe/model/layers.h"

namespace gqe {

class DecoderLayer : public torch::nn::Module {
 public:
  explicit DecoderLayer(const ModelConfig& cfg, WeightInit init = WeightInit::random);
  AttentionResult forward(const at::Tensor& h, LayerKVCache* cache);  // [B,T,d] -> [B,T,d]
  std::shared_ptr<Norm> attn_norm, mlp_norm;
  std::shared_ptr<AttentionBlock> attn;
  std::shared_ptr<MLP> mlp;
};

struct LMOutput {
  at::Tensor logits;    // [B, T, V]
  at::Tensor aux_loss;  // scalar: load-balancing loss summed over layers (unweighted)
};

class LanguageModel : public torch::nn::Module {
 public:
  // init: WeightInit::none for a model whose weights are loaded next (io/checkpoint.h): no time and no
  // random numbers spent on values about to be replaced.
  explicit LanguageModel(const ModelConfig& cfg, WeightInit init = WeightInit::random);
  // tokens: [B, T] int64 at positions cache->length() .. ; cache appended to when given.
  LMOutput forward(const at::Tensor& tokens, KVCache* cache = nullptr);
  // forward() in two halves, for callers that need the logits at a few positions only (eval scoring): the
  // final normed hidden states [B, T, d], and the LM head on any rows of them [..., d] -> [..., V].
  at::Tensor hidden_states(const at::Tensor& tokens, KVCache* cache = nullptr);
  at::Tensor logits_of(const at::Tensor& hidden) const;
  // Cross-entropy of logits [B,T,V] against targets [B,T] (mean over tokens).
  static at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets);

  const ModelConfig& config() const { return cfg_; }
  // Where the weights live: token ids and every tensor a caller builds for forward() belong there.
  at::Device device() const { return embed_tokens->weight.device(); }
  KVCache make_cache() const { return KVCache(cfg_.num_hidden_layers); }
  // GQE layers, for routing analytics (empty for GQA).
  std::vector<std::shared_ptr<GQEAttention>> gqe_layers() const;

  torch::nn::Embedding embed_tokens{nullptr};
  std::vector<std::shared_ptr<DecoderLayer>> layers;
  std::shared_ptr<Norm> norm;
  Linear lm_head{nullptr};  // null when tied to embed_tokens

 private:
  // Embedding, decoder layers and final norm: (hidden states [B, T, d], summed aux loss).
  std::pair<at::Tensor, at::Tensor> trunk(const at::Tensor& tokens, KVCache* cache);
  ModelConfig cfg_;
  torch::nn::ModuleList layer_list_;
};

}  // namespace gqe
