#include "gqe/model/layers.h"

#include <torch/nn/init.h>

namespace gqe {

Norm::Norm(int64_t dim, double eps, bool layernorm) : eps_(eps), layernorm_(layernorm) {
  // host: parameters are made on the CPU like every module's; Module::to() moves them.
  weight = register_parameter("weight", at::ones({dim}));
  if (layernorm) bias = register_parameter("bias", at::zeros({dim}));
}

at::Tensor Norm::forward(const at::Tensor& x) {
  if (layernorm_) return at::layer_norm(x, {x.size(-1)}, weight, bias, eps_);
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_) * weight;
}

MLP::MLP(const ModelConfig& cfg, WeightInit init) : swiglu_(cfg.mlp_type == MlpType::swiglu) {
  auto lin = [&](int64_t in, int64_t out) {
    Linear l(in, out, init);
    if (init == WeightInit::none) return l;
    torch::NoGradGuard g;
    torch::nn::init::normal_(l->weight, 0.0, cfg.initializer_range);
    return l;
  };
  const int64_t d = cfg.hidden_size, f = cfg.intermediate_size;
  if (swiglu_) gate_proj = register_module("gate_proj", lin(d, f));
  up_proj = register_module("up_proj", lin(d, f));
  down_proj = register_module("down_proj", lin(f, d));
}

at::Tensor MLP::forward_rows(const at::Tensor& x) {
  if (swiglu_) return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
  return down_proj->forward(at::gelu(up_proj->forward(x)));
}

at::Tensor MLP::forward(const at::Tensor& x) {
  // Inference on a long input runs in chunks of tokens: whole, the intermediates are [tokens, F] each
  // (369 MB apiece at 32k tokens, F 2816) and the MLP ran at half its FLOP rate, paging them in; in chunks
  // they stay a few MB (paper shape, 32k tokens: 5.7 -> 3.1 s). Training keeps them all anyway.
  constexpr int64_t kChunk = 2048;
  const int64_t d = x.size(-1), rows = x.numel() / d;
  if (at::GradMode::is_enabled() || rows <= 2 * kChunk) return forward_rows(x);
  at::Tensor x2 = x.reshape({rows, d});
  at::Tensor out = at::empty({rows, down_proj->weight.size(0)}, x.options());
  for (int64_t s = 0; s < rows; s += kChunk) {
    const int64_t n = std::min(kChunk, rows - s);
    out.narrow(0, s, n).copy_(forward_rows(x2.narrow(0, s, n)));
  }
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = out.size(1);
  return out.view(shape);
}

}  // namespace gqe
