#include "gqe/attention/linear.h"

#include <torch/nn/init.h>

#include <cmath>

#include "gqe/kernels/gemv.h"

namespace gqe {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, WeightInit init) {
  // host: parameters are made on the CPU like every module's; Module::to() moves them.
  weight = register_parameter("weight", at::empty({out_features, in_features}));
  // torch::nn::Linear's reset_parameters(), the same call: callers re-initialise the weight after it, but
  // the generator must advance as it always has.
  if (init == WeightInit::random) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
}

at::Tensor linear_forward(const at::Tensor& x, const at::Tensor& w) {
  if (kernels::linear_rows_applies(x, w)) return kernels::linear_rows(x, w);
  return at::linear(x, w);
}

at::Tensor LinearImpl::forward(const at::Tensor& x) { return linear_forward(x, weight); }

}  // namespace gqe
