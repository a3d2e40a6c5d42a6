#include "gqe/train/adamw.h"

#include <cmath>
#include <map>

#include "gqe/core/error.h"

namespace gqe {

bool default_weight_decay(const std::string& name, const at::Tensor& p) {
  if (p.dim() < 2) return false;                         // norm weights/biases, any bias
  if (name.rfind("embed_tokens", 0) == 0) return false;  // the (possibly tied) token embedding
  return true;
}

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> named_params, AdamWOptions o, DecayRule decays)
    : params_(std::move(named_params)), o_(o) {
  for (const auto& [n, p] : params_) decay_.push_back(decays(n, p));
  m_.resize(params_.size());
  v_.resize(params_.size());
}

void AdamW::zero_grad() {
  for (auto& [n, p] : params_)
    if (p.grad().defined()) {
      p.mutable_grad().detach_();
      p.mutable_grad().zero_();
    }
}

void AdamW::step(double lr) {
  torch::NoGradGuard g;
  ++t_;
  const double bc1 = 1.0 - std::pow(o_.beta1, double(t_));
  const double bc2 = 1.0 - std::pow(o_.beta2, double(t_));
  const double step_size = lr / bc1;
  const double bc2_sqrt = std::sqrt(bc2);
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    const at::Tensor& grad = p.grad();
    if (!grad.defined()) continue;
    if (!m_[i].defined()) {
      m_[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
      v_[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
    }
    if (decay_[i] && o_.weight_decay != 0) p.mul_(1.0 - lr * o_.weight_decay);
    m_[i].mul_(o_.beta1).add_(grad, 1.0 - o_.beta1);
    v_[i].mul_(o_.beta2).addcmul_(grad, grad, 1.0 - o_.beta2);
    at::Tensor denom = (v_[i].sqrt() / bc2_sqrt).add_(o_.eps);
    p.addcdiv_(m_[i], denom, -step_size);
  }
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i)
    if (m_[i].defined()) {
      out.emplace_back("exp_avg/" + params_[i].first, m_[i]);
      out.emplace_back("exp_avg_sq/" + params_[i].first, v_[i]);
    }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, at::Tensor>>& tensors, int64_t steps_taken,
                       const std::string& source) {
  std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
  t_ = steps_taken;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    auto m = by_name.find("exp_avg/" + name), v = by_name.find("exp_avg_sq/" + name);
    if (t_ == 0 && m == by_name.end() && v == by_name.end()) {
      m_[i] = v_[i] = at::Tensor();
      continue;
    }
    for (auto it : {m, v}) {
      if (it == by_name.end()) throw FormatError(source + ": missing optimizer moment for parameter '" + name + "'");
      if (it->second.sizes() != p.sizes() || it->second.scalar_type() != p.scalar_type())
        throw FormatError(source + ": optimizer tensor '" + it->first + "' has shape " + c10::str(it->second.sizes()) +
                          ", the parameter has " + c10::str(p.sizes()));
    }
    m_[i] = m->second.to(p.device()).clone();
    v_[i] = v->second.to(p.device()).clone();
  }
}

}  // namespace gqe
