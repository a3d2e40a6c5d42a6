// gqe's linear layer (bias-free, weight [out, in]) and how a model's weights start. torch::nn::Linear
// initialises its weight in its constructor; a model about to receive a checkpoint's weights must not
// spend the time (and the random numbers) on that, so gqe builds its own: with WeightInit::random it draws
// exactly what torch::nn::Linear draws (the training runs' initialisation is unchanged, bit for bit), with
// WeightInit::none it allocates the weight and leaves it unset. Its forward runs the decode-step kernel
// (kernels/gemv.h) for a few rows and at::linear otherwise.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace gqe {

// random: the initialisation of training (torch's default init, then each layer's own); none: the
// parameters are allocated but not written, for a model whose weights are loaded next.
enum class WeightInit { random, none };

// at::linear(x, w) without bias, through the decode-step kernel where it applies (a few rows, fp32 on the CPU,
// no gradient).
at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& w);

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, WeightInit init);
  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]
  at::Tensor weight;                       // [out, in]
};
TORCH_MODULE(Linear);

}  // namespace gqe
