#include "gqe/kernels/cuda/rope_table.h"

#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace gqe::kernels::cuda {
namespace {

struct Tables {
  at::Tensor cos, sin;  // [capacity, d_h / 2] in the key's dtype, on the key's device
};

// The cos and sin of positions 0 .. need-1 (at least), for x's device and dtype.
std::pair<at::Tensor, at::Tensor> tables_for(const at::Tensor& x, int64_t need, double theta) {
  static std::mutex mutex;
  static std::map<std::tuple<std::string, int, int64_t, double>, Tables> cache;
  const int64_t dh = x.size(3), half = dh / 2;
  const auto key = std::make_tuple(x.device().str(), int(x.scalar_type()), dh, theta);
  std::lock_guard<std::mutex> lock(mutex);
  Tables& t = cache[key];
  if (!t.cos.defined() || t.cos.size(0) < need) {
    const int64_t capacity = std::max<int64_t>({need, t.cos.defined() ? 2 * t.cos.size(0) : 0, 1024});
    // The reference's arithmetic (kernels/reference.cpp rope_reference), for all positions at once.
    auto opts = x.options().dtype(at::kDouble);
    at::Tensor inv_freq = at::pow(theta, -at::arange(0, half, opts) * (2.0 / double(dh)));  // [half]
    at::Tensor ang = at::outer(at::arange(0, capacity, opts), inv_freq);                    // [capacity, half]
    t.cos = at::cos(ang).to(x.scalar_type());
    t.sin = at::sin(ang).to(x.scalar_type());
  }
  return {t.cos, t.sin};
}

// The rotation with cos, sin broadcast to x [B, T, H, d_h]: the reference's ops, in its order.
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(3) / 2;
  at::Tensor x1 = x.narrow(3, 0, half), x2 = x.narrow(3, half, half);
  return at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, 3);
}

}  // namespace

at::Tensor rope_cached(const at::Tensor& x, int64_t start, double theta) {
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0 && start >= 0, "rope_cached: expected x [B, T, H, even d_h] and a ",
              "start >= 0, got ", x.sizes(), " at ", start);
  const int64_t T = x.size(1), half = x.size(3) / 2;
  auto [cos, sin] = tables_for(x, start + T, theta);
  return rotate(x, cos.narrow(0, start, T).view({1, T, 1, half}), sin.narrow(0, start, T).view({1, T, 1, half}));
}

at::Tensor rope_cached_at(const at::Tensor& x, const std::vector<int64_t>& positions, double theta) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(3) % 2 == 0 && x.size(0) == int64_t(positions.size()),
              "rope_cached_at: expected x [B, 1, H, even d_h] and B positions, got ", x.sizes(), " and ",
              positions.size());
  const int64_t B = x.size(0), half = x.size(3) / 2;
  int64_t longest = 0;
  for (int64_t p : positions) {
    TORCH_CHECK(p >= 0, "rope_cached_at: position ", p, " < 0");
    longest = std::max(longest, p);
  }
  auto [cos, sin] = tables_for(x, longest + 1, theta);
  // host: the positions, copied to x's device for one gather
  at::Tensor idx = at::tensor(positions, at::kLong).to(x.device());
  return rotate(x, cos.index_select(0, idx).view({B, 1, 1, half}), sin.index_select(0, idx).view({B, 1, 1, half}));
}

}  // namespace gqe::kernels::cuda
