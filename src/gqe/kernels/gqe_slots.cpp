#include "gqe/kernels/gqe_slots.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "gqe/kernels/cpu_check.h"

namespace gqe::kernels {
namespace {

constexpr int64_t kTokensPerItem = 64;

// o [N, S, dh], w [N, S], s [N, dh] -> out [N, (S + 2) * dh] (S = G*k slots).
at::Tensor slots_forward(const at::Tensor& o, const at::Tensor& w, const at::Tensor& s) {
  const int64_t N = o.size(0), S = o.size(1), dh = o.size(2), width = (S + 2) * dh;
  at::Tensor out = at::empty({N, width}, o.options());
  const float *op = o.data_ptr<float>(), *wp = w.data_ptr<float>(), *sp = s.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, N, kTokensPerItem, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* oi = op + i * S * dh;
      float* di = dst + i * width;
      std::copy_n(oi, S * dh, di);
      float* bar = di + S * dh;
      std::fill_n(bar, dh, 0.f);
      for (int64_t r = 0; r < S; ++r) {
        const float wr = wp[i * S + r];
        for (int64_t j = 0; j < dh; ++j) bar[j] += wr * oi[r * dh + j];
      }
      std::copy_n(sp + i * dh, dh, bar + dh);
    }
  });
  return out;
}

class GqeSlotsFunction : public torch::autograd::Function<GqeSlotsFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& o, const at::Tensor& w,
                            const at::Tensor& s) {
    ctx->save_for_backward({o, w});
    return slots_forward(o, w, s);
  }
  // d o[r] = g_hard[r] + w[r] g_bar;  d w[r] = o[r] . g_bar;  d s = g_shared.
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &o = saved[0], &w = saved[1];
    const int64_t N = o.size(0), S = o.size(1), dh = o.size(2), width = (S + 2) * dh;
    const at::Tensor g = grads[0].to(at::kFloat).contiguous();
    at::Tensor d_o = at::empty_like(o), d_w = at::empty_like(w), d_s = at::empty({N, dh}, o.options());
    const float *gp = g.data_ptr<float>(), *op = o.data_ptr<float>(), *wp = w.data_ptr<float>();
    float *dop = d_o.data_ptr<float>(), *dwp = d_w.data_ptr<float>(), *dsp = d_s.data_ptr<float>();
    at::parallel_for(0, N, kTokensPerItem, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float* gi = gp + i * width;
        const float* gbar = gi + S * dh;
        for (int64_t r = 0; r < S; ++r) {
          const float wr = wp[i * S + r];
          const float* orow = op + (i * S + r) * dh;
          float* drow = dop + (i * S + r) * dh;
          float dot = 0.f;
          for (int64_t j = 0; j < dh; ++j) {
            drow[j] = gi[r * dh + j] + wr * gbar[j];
            dot += orow[j] * gbar[j];
          }
          dwp[i * S + r] = dot;
        }
        std::copy_n(gbar + dh, dh, dsp + i * dh);
      }
    });
    return {d_o, d_w, d_s};
  }
};

}  // namespace

at::Tensor gqe_slots(const at::Tensor& slots, const at::Tensor& weights, const at::Tensor& shared) {
  check_on_cpu("gqe_slots", "slots", slots), check_on_cpu("gqe_slots", "weights", weights);
  check_on_cpu("gqe_slots", "shared", shared);
  TORCH_CHECK(slots.dim() == 4 && weights.dim() == 4 && shared.dim() == 4, "gqe_slots: expected slots [B,T,G*k,d_h], ",
              "weights [B,T,G,k], shared [B,T,1,d_h]; got ", slots.sizes(), ", ", weights.sizes(), ", ", shared.sizes());
  const int64_t B = slots.size(0), T = slots.size(1), S = slots.size(2), dh = slots.size(3);
  TORCH_CHECK(weights.size(0) == B && weights.size(1) == T && weights.size(2) * weights.size(3) == S,
              "gqe_slots: weights ", weights.sizes(), " do not match slots ", slots.sizes());
  TORCH_CHECK(shared.sizes() == (at::IntArrayRef{B, T, 1, dh}), "gqe_slots: shared ", shared.sizes(),
              " is not [B, T, 1, d_h] = [", B, ", ", T, ", 1, ", dh, "]");
  TORCH_CHECK(slots.scalar_type() == at::kFloat && weights.scalar_type() == at::kFloat &&
                  shared.scalar_type() == at::kFloat,
              "gqe_slots: fp32 tensors expected");
  const at::Tensor o = slots.reshape({B * T, S, dh}).contiguous(), w = weights.reshape({B * T, S}).contiguous();
  const at::Tensor s = shared.reshape({B * T, dh}).contiguous();
  const bool grad = c10::GradMode::is_enabled() && (slots.requires_grad() || weights.requires_grad() ||
                                                    shared.requires_grad());
  at::Tensor out = grad ? GqeSlotsFunction::apply(o, w, s) : slots_forward(o, w, s);
  return out.view({B, T, (S + 2) * dh});
}

}  // namespace gqe::kernels
