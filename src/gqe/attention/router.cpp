#include "gqe/attention/router.h"

#include <algorithm>
#include <vector>

namespace gqe {

namespace {

// The k largest of each row of M probabilities, in descending order, the lower index first among equals:
// what the first k of a stable descending sort give (at::topk makes no promise about ties), by selection
// in one pass over the rows instead of sorting each one (M is small). probs: [..., M] -> [..., k] int64.
at::Tensor top_k_stable(const at::Tensor& probs, int64_t k) {
  const int64_t M = probs.size(-1), rows = probs.numel() / M;
  TORCH_CHECK(k >= 1 && k <= M, "route_tokens: k = ", k, " outside 1..", M);
  at::Tensor p = probs.contiguous();
  std::vector<int64_t> out_shape(probs.sizes().begin(), probs.sizes().end());
  out_shape.back() = k;
  at::Tensor sel = at::empty(out_shape, probs.options().dtype(at::kLong));
  int64_t* sp = sel.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "top_k_stable", [&] {
    const scalar_t* pp = p.data_ptr<scalar_t>();
    for (int64_t i = 0; i < rows; ++i) {
      const scalar_t* row = pp + i * M;
      int64_t* dst = sp + i * k;
      for (int64_t r = 0; r < k; ++r) {
        int64_t best = -1;
        for (int64_t m = 0; m < M; ++m) {
          if (std::find(dst, dst + r, m) != dst + r) continue;  // already chosen
          if (best < 0 || row[m] > row[best]) best = m;         // strict: ties keep the lower index
        }
        dst[r] = best;
      }
    }
  });
  return sel;
}

}  // namespace

Routing route_tokens(const at::Tensor& logits, int64_t k) {
  Routing r;
  r.probs = at::softmax(logits, -1);
  r.selected = top_k_stable(r.probs.detach(), k);
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

}  // namespace gqe
