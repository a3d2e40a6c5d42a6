#include "gqe/attention/router.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

namespace gqe {

at::Tensor router_logits(const at::Tensor& x, const at::Tensor& weight) {
  const at::ScalarType t = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  // Autocast off for this product (every device's autocast key): it would cast x and W back to bf16.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return at::matmul(x.to(t), weight.to(t).t());
}

Routing route_tokens(const at::Tensor& logits, int64_t k, TopK top_k) {
  Routing r;
  r.probs = at::softmax(logits, -1);
  r.selected = top_k(r.probs.detach(), k);
  r.selected_probs = r.probs.gather(-1, r.selected);
  return r;
}

at::Tensor renormalised_weights(const at::Tensor& selected_probs, double eps) {
  // Joint over groups and ranks: dims 2 (G) and 3 (k).
  at::Tensor denom = selected_probs.sum({2, 3}, /*keepdim=*/true).clamp_min(eps);
  return selected_probs / denom;
}

at::Tensor load_balancing_loss(const Routing& r) {
  const int64_t M = r.probs.size(-1);
  at::Tensor p = r.probs.flatten(0, 1);  // [BT, G, M]
  at::Tensor chosen = at::zeros_like(p.detach()).scatter_(-1, r.selected.flatten(0, 1), 1.0);
  at::Tensor f = chosen.mean(0);    // [G, M]
  at::Tensor P = p.mean(0);         // [G, M]
  return ((f * P).sum(-1) * double(M)).mean();
}

Routing weigh_routing(Routing r, double eps) {
  r.weights = renormalised_weights(r.selected_probs, eps);
  r.aux_loss = load_balancing_loss(r);
  return r;
}

}  // namespace gqe
