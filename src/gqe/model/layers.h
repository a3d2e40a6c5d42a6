// The non-attention pieces of a decoder block: normalisation and the MLP.
#pragma once
#include <torch/nn/module.h>
#include "gqe/attention/linear.h"
#include "gqe/core/config.h"

namespace gqe {

// RMSNorm (weight) or LayerNorm (weight, bias), chosen by config.norm_type.
class Norm : public torch::nn::Module {
 public:
  Norm(int64_t dim, double eps, bool layernorm);
  at::Tensor forward(const at::Tensor& x);  // [..., dim] -> [..., dim]
  at::Tensor weight, bias;

 private:
  double eps_;
  bool layernorm_;
};

// SwiGLU: down(silu(gate(x)) * up(x)); or GELU: down(gelu(up(x))). Bias-free.
class MLP : public torch::nn::Module {
 public:
  explicit MLP(const ModelConfig& cfg, WeightInit init = WeightInit::random);
  at::Tensor forward(const at::Tensor& x);  // [B, T, d] -> [B, T, d]
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  at::Tensor forward_rows(const at::Tensor& x);  // [..., d] -> [..., d], all rows at once
  bool swiglu_;
};

}  // namespace gqe
