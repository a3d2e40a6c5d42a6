// AdamW (decoupled weight decay, Loshchilov & Hutter) over named parameters, with its state held as
// named tensors so that checkpoints store it in safetensors and a resumed run is bit-exact.
// The update is PyTorch's:
//   p *= 1 - lr * wd
//   m = b1 m + (1 - b1) g ;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Weight decay applies only to parameters for which `decays(name, tensor)` is true; the default rule
// (default_weight_decay) decays matrices of the attention, router and MLP projections (and an untied
// lm_head), not norm weights, biases (any 1-D tensor) or the token embedding (embed_tokens.*).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace gqe {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-7;
  double weight_decay = 0.1;
};

bool default_weight_decay(const std::string& name, const at::Tensor& param);

class AdamW {
 public:
  using DecayRule = std::function<bool(const std::string&, const at::Tensor&)>;
  AdamW(std::vector<std::pair<std::string, at::Tensor>> named_params, AdamWOptions o,
        DecayRule decays = default_weight_decay);

  // One update with learning rate `lr` from the parameters' .grad() (parameters without one are left alone).
  void step(double lr);
  void zero_grad();
  int64_t steps_taken() const { return t_; }
  const AdamWOptions& options() const { return o_; }
  bool decays(size_t i) const { return decay_[i]; }
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }

  // State as named tensors: "exp_avg/<param name>", "exp_avg_sq/<param name>" (moments are created lazily
  // at the first step, so before it the list is empty) + the step count.
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;
  // Restores from tensors written by state_tensors(); every moment must be present with the right shape.
  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& tensors, int64_t steps_taken,
                  const std::string& source);

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<bool> decay_;
  std::vector<at::Tensor> m_, v_;
  AdamWOptions o_;
  int64_t t_ = 0;
};

}  // namespace gqe
