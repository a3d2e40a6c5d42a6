#include "gqe/kernels/rope.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "gqe/kernels/cpu_check.h"

namespace gqe::kernels {
namespace {

// cos and sin of pos * theta^(-2i/d_h) for pos in start..start+T-1, i < d_h/2: [2, T, d_h/2] fp32.
// The same double-precision ops as rope_reference, so both paths rotate by identical float angles.
at::Tensor angle_table(int64_t start, int64_t T, int64_t dh, double theta) {
  auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Tensor inv_freq = at::pow(theta, -at::arange(0, dh / 2, opts) * (2.0 / double(dh)));
  at::Tensor ang = at::outer(at::arange(start, start + T, opts), inv_freq);
  return at::stack({at::cos(ang), at::sin(ang)}).to(at::kFloat).contiguous();
}

// y = rotate(x) by +angle (sign = 1) or -angle (sign = -1, the backward). x, y: [B, T, H, d_h] contiguous.
void rotate(const at::Tensor& x, const at::Tensor& table, float sign, at::Tensor& y) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), dh = x.size(3), half = dh / 2;
  const float *xp = x.data_ptr<float>(), *cp = table.data_ptr<float>(), *sp = cp + T * half;
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

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t start, double theta) {
    at::Tensor xc = x.contiguous(), table = angle_table(start, x.size(1), x.size(3), theta);
    at::Tensor y = at::empty_like(xc);
    rotate(xc, table, 1.f, y);
    ctx->save_for_backward({table});
    return y;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    at::Tensor g = grads[0].contiguous(), dx = at::empty_like(g);
    rotate(g, ctx->get_saved_variables()[0], -1.f, dx);
    return {dx, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor rope(const at::Tensor& x, int64_t start, double theta) {
  check_on_cpu("rope", "x", x);
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "rope: x must be [B, T, H, d_h] with even d_h, got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat, "rope: fp32 expected, got ", x.scalar_type());
  return RopeFunction::apply(x, start, theta);
}

}  // namespace gqe::kernels
