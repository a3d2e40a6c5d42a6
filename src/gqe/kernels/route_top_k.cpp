#include "gqe/kernels/route_top_k.h"

#include "gqe/kernels/cpu_check.h"

#include <algorithm>
#include <vector>

namespace gqe::kernels {

at::Tensor route_top_k(const at::Tensor& probs, int64_t k) {
  check_on_cpu("route_top_k", "probs", probs);
  const int64_t M = probs.size(-1), rows = probs.numel() / M;
  TORCH_CHECK(k >= 1 && k <= M, "route_tokens: k = ", k, " outside 1..", M);
  at::Tensor p = probs.contiguous();
  std::vector<int64_t> out_shape(probs.sizes().begin(), probs.sizes().end());
  out_shape.back() = k;
  at::Tensor sel = at::empty(out_shape, probs.options().dtype(at::kLong));
  int64_t* sp = sel.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "route_top_k", [&] {
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

}  // namespace gqe::kernels
