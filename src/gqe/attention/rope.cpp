#include "gqe/attention/rope.h"

namespace gqe {

at::Tensor apply_rope(const at::Tensor& x, int64_t start, double theta) {
  const int64_t T = x.size(1), dh = x.size(3), half = dh / 2;
  auto opts = x.options().dtype(at::kDouble);
  // Angles in double, then cast: keeps fp32 RoPE accurate at long positions.
  at::Tensor inv_freq = at::pow(theta, -at::arange(0, half, opts) * (2.0 / double(dh)));  // [half]
  at::Tensor pos = at::arange(start, start + T, opts);                                    // [T]
  at::Tensor ang = at::outer(pos, inv_freq);                                              // [T, half]
  at::Tensor cos = at::cos(ang).to(x.scalar_type()).view({1, T, 1, half});
  at::Tensor sin = at::sin(ang).to(x.scalar_type()).view({1, T, 1, half});
  at::Tensor x1 = x.narrow(3, 0, half), x2 = x.narrow(3, half, half);
  return at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, 3);
}

}  // namespace gqe
