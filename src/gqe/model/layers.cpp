#include "gqe/model/layers.h"

#include <torch/nn/init.h>

namespace gqe {

Norm::Norm(int64_t dim, double eps, bool layernorm) : eps_(eps), layernorm_(layernorm) {
  weight = register_parameter("weight", at::ones({dim}));
  if (layernorm) bias = register_parameter("bias", at::zeros({dim}));
}

at::Tensor Norm::forward(const at::Tensor& x) {
  if (layernorm_) return at::layer_norm(x, {x.size(-1)}, weight, bias, eps_);
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_) * weight;
}

MLP::MLP(const ModelConfig& cfg) : swiglu_(cfg.mlp_type == "swiglu") {
  auto lin = [&](int64_t in, int64_t out) {
    auto l = torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
    torch::NoGradGuard g;
    torch::nn::init::normal_(l->weight, 0.0, cfg.initializer_range);
    return l;
  };
  const int64_t d = cfg.hidden_size, f = cfg.intermediate_size;
  if (swiglu_) gate_proj = register_module("gate_proj", lin(d, f));
  up_proj = register_module("up_proj", lin(d, f));
  down_proj = register_module("down_proj", lin(f, d));
}

at::Tensor MLP::forward(const at::Tensor& x) {
  if (swiglu_) return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
  return down_proj->forward(at::gelu(up_proj->forward(x)));
}

}  // namespace gqe
