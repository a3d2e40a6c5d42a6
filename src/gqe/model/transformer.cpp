#include "gqe/model/transformer.h"

#include <torch/nn/init.h>

namespace gqe {

DecoderLayer::DecoderLayer(const ModelConfig& cfg, WeightInit init) {
  const bool ln = cfg.norm_type == NormType::layernorm;
  attn_norm = register_module("attn_norm", std::make_shared<Norm>(cfg.hidden_size, cfg.rms_norm_eps, ln));
  attn = register_module("attn", make_attention(cfg, init));
  mlp_norm = register_module("mlp_norm", std::make_shared<Norm>(cfg.hidden_size, cfg.rms_norm_eps, ln));
  mlp = register_module("mlp", std::make_shared<MLP>(cfg, init));
}

AttentionResult DecoderLayer::forward(const at::Tensor& h, LayerKVCache* cache) {
  AttentionResult a = attn->forward(attn_norm->forward(h), cache);
  at::Tensor h2 = h + a.y;
  return {h2 + mlp->forward(mlp_norm->forward(h2)), a.aux_loss};
}

LanguageModel::LanguageModel(const ModelConfig& cfg, WeightInit init) : cfg_(cfg) {
  validate_model_config(cfg, "model config");
  // A weight given in the options is taken as it is (torch::nn::Embedding draws none for it).
  auto embedding = torch::nn::EmbeddingOptions(cfg.vocab_size, cfg.hidden_size);
  if (init == WeightInit::none) embedding._weight(at::empty({cfg.vocab_size, cfg.hidden_size}));  // host, as above
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(embedding));
  if (init == WeightInit::random) {
    torch::NoGradGuard g;
    torch::nn::init::normal_(embed_tokens->weight, 0.0, cfg.initializer_range);
  }
  layer_list_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    layers.push_back(std::make_shared<DecoderLayer>(cfg, init));
    layer_list_->push_back(layers.back());
  }
  norm = register_module("norm", std::make_shared<Norm>(cfg.hidden_size, cfg.rms_norm_eps,
                                                        cfg.norm_type == NormType::layernorm));
  if (!cfg.tie_word_embeddings) {
    lm_head = register_module("lm_head", Linear(cfg.hidden_size, cfg.vocab_size, init));
    torch::NoGradGuard g;
    if (init == WeightInit::random) torch::nn::init::normal_(lm_head->weight, 0.0, cfg.initializer_range);
  }
}

std::pair<at::Tensor, at::Tensor> LanguageModel::trunk(const at::Tensor& tokens, KVCache* cache) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be [B, T]");
  if (cache && cache->layers.size() != layers.size()) cache->layers.resize(layers.size());
  at::Tensor h = embed_tokens->forward(tokens);
  at::Tensor aux = at::zeros({}, h.options());
  for (size_t i = 0; i < layers.size(); ++i) {
    AttentionResult r = layers[i]->forward(h, cache ? &cache->layers[i] : nullptr);
    h = r.y;
    aux = aux + r.aux_loss;
  }
  return {norm->forward(h), aux};
}

LMOutput LanguageModel::forward(const at::Tensor& tokens, KVCache* cache) {
  auto [h, aux] = trunk(tokens, cache);
  return {logits_of(h), aux};
}

at::Tensor LanguageModel::hidden_states(const at::Tensor& tokens, KVCache* cache) { return trunk(tokens, cache).first; }

at::Tensor LanguageModel::logits_of(const at::Tensor& hidden) const {
  return linear_forward(hidden, lm_head ? lm_head->weight : embed_tokens->weight);
}

at::Tensor LanguageModel::lm_loss(const at::Tensor& logits, const at::Tensor& targets) {
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

std::vector<std::shared_ptr<GQEAttention>> LanguageModel::gqe_layers() const {
  std::vector<std::shared_ptr<GQEAttention>> out;
  for (const auto& l : layers)
    if (auto g = std::dynamic_pointer_cast<GQEAttention>(l->attn)) out.push_back(g);
  return out;
}

}  // namespace gqe
