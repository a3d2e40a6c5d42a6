#include "gqe/kernels/rope.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#include "gqe/kernels/cpu_check.h"

namespace gqe::kernels {
namespace {

// cos and sin of pos * theta^(-2i/d_h) for pos in 0..cap-1, i < d_h/2: [2, cap, d_h/2] fp32 with cap >= end.
// The same double-precision ops as rope_reference, so both paths rotate by identical float angles. Kept
// per (d_h, theta) and grown by doubling: a decode step rotates one position, and forming its table with
// libtorch ops cost more than the rotation (about 15 us of small ops per call). A grown table holds the
// same values at the old positions (the ops are elementwise), and slices handed out keep their storage.
at::Tensor angle_table(int64_t end, int64_t dh, double theta) {
  static std::mutex mu;
  static std::map<std::pair<int64_t, double>, at::Tensor> tables;
  std::lock_guard<std::mutex> lock(mu);
  at::Tensor& table = tables[{dh, theta}];
  if (!table.defined() || table.size(1) < end) {
    // A table first formed under inference mode (Python's torch.inference_mode) would be an inference
    // tensor, and a later training step could not save it for its backward: form it as a normal tensor.
    c10::InferenceMode normal_tensors(false);
    const int64_t cap = std::max<int64_t>({end, table.defined() ? 2 * table.size(1) : 0, 256});
    auto opts = at::TensorOptions().dtype(at::kDouble);
    at::Tensor inv_freq = at::pow(theta, -at::arange(0, dh / 2, opts) * (2.0 / double(dh)));
    at::Tensor ang = at::outer(at::arange(0, cap, opts), inv_freq);
    table = at::stack({at::cos(ang), at::sin(ang)}).to(at::kFloat).contiguous();
  }
  return table;
}

// y = rotate(x) by +angle (sign = 1) or -angle (sign = -1, the backward) at positions start..; x, y:
// [B, T, H, d_h] contiguous; table: angle_table's [2, cap, d_h/2].
void rotate(const at::Tensor& x, const at::Tensor& table, int64_t start, float sign, at::Tensor& y) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), dh = x.size(3), half = dh / 2;
  const float* cp = table.data_ptr<float>() + start * half;
  const float* sp = cp + table.size(1) * half;
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, B * T, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, H * dh)), [&](int64_t b0, int64_t b1) {
    for (int64_t bt = b0; bt < b1; ++bt) {
      const float *c = cp + (bt % T) * half, *s = sp + (bt % T) * half;
      for (int64_t h = 0; h < H; ++h) {
        const float* x1 = xp + (bt * H + h) * dh;
        float* y1 = yp + (bt * H + h) * dh;
        for (int64_t i = 0; i < half; ++i) {  // vectorised by the compiler: contiguous, no dependence
          const float a = x1[i], b = x1[half + i], si = sign * s[i];
          y1[i] = a * c[i] - b * si;
          y1[half + i] = b * c[i] + a * si;
        }
      }
    }
  });
}

at::Tensor rotate_forward(const at::Tensor& x, int64_t start, double theta, at::Tensor* table_out) {
  at::Tensor xc = x.contiguous(), table = angle_table(start + x.size(1), x.size(3), theta);
  at::Tensor y = at::empty_like(xc);
  rotate(xc, table, start, 1.f, y);
  if (table_out) *table_out = table;
  return y;
}

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t start, double theta) {
    at::Tensor table;
    at::Tensor y = rotate_forward(x, start, theta, &table);
    ctx->save_for_backward({table});
    ctx->saved_data["start"] = start;
    return y;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    at::Tensor g = grads[0].contiguous(), dx = at::empty_like(g);
    rotate(g, ctx->get_saved_variables()[0], ctx->saved_data["start"].toInt(), -1.f, dx);
    return {dx, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor rope(const at::Tensor& x, int64_t start, double theta) {
  check_on_cpu("rope", "x", x);
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "rope: x must be [B, T, H, d_h] with even d_h, got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat, "rope: fp32 expected, got ", x.scalar_type());
  TORCH_CHECK(start >= 0, "rope: negative start position ", start);
  // No gradient wanted (decode, evaluation): no autograd node.
  if (!(c10::GradMode::is_enabled() && x.requires_grad())) return rotate_forward(x, start, theta, nullptr);
  return RopeFunction::apply(x, start, theta);
}

}  // namespace gqe::kernels
