#include "gqe/kernels/fused_routing.h"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gqe/kernels/cpu_check.h"

namespace gqe::kernels {
namespace {

constexpr int64_t kTokensPerChunk = 256;  // fixed, so that the sums over tokens do not depend on the threads

struct Dims {
  int64_t N, G, M, k;  // tokens (B*T), groups, experts per group, choices per group
};

// One token: softmax of each group's M logits into p, the top-k of each group into sel (strictly greater
// wins, so ties keep the lower index, as route_top_k), and the selected probabilities, weights into sp, w.
void route_token(const float* z, const Dims& d, double eps, float* p, int64_t* sel, float* sp, float* w) {
  float sum_sel = 0.f;
  for (int64_t g = 0; g < d.G; ++g) {
    const float* zg = z + g * d.M;
    float* pg = p + g * d.M;
    float mx = zg[0];
    for (int64_t m = 1; m < d.M; ++m) mx = std::max(mx, zg[m]);
    float s = 0.f;
    for (int64_t m = 0; m < d.M; ++m) s += (pg[m] = std::exp(zg[m] - mx));
    const float inv = 1.f / s;
    for (int64_t m = 0; m < d.M; ++m) pg[m] *= inv;
    int64_t* sg = sel + g * d.k;
    for (int64_t r = 0; r < d.k; ++r) {
      int64_t best = -1;
      for (int64_t m = 0; m < d.M; ++m) {
        if (std::find(sg, sg + r, m) != sg + r) continue;  // already chosen
        if (best < 0 || pg[m] > pg[best]) best = m;
      }
      sg[r] = best;
      sp[g * d.k + r] = pg[best];
      sum_sel += pg[best];
    }
  }
  const float denom = std::max(sum_sel, float(eps));
  for (int64_t i = 0; i < d.G * d.k; ++i) w[i] = sp[i] / denom;
}

// The forward pass over logits [N, G, M]: {probs, selected, selected_probs, weights, aux} as in FusedRouting,
// and f[g,m], the fraction of tokens that chose (g, m) (the backward's constant).
struct Forward {
  at::Tensor probs, selected, sp, w, aux;
  std::vector<double> f;
};

Forward route_forward(const at::Tensor& logits, int64_t k, double eps) {
  const at::Tensor z = logits.contiguous();
  const Dims d{z.size(0), z.size(1), z.size(2), k};
  Forward out;
  out.probs = at::empty_like(z), out.selected = at::empty({d.N, d.G, k}, z.options().dtype(at::kLong));
  out.sp = at::empty({d.N, d.G, k}, z.options()), out.w = at::empty_like(out.sp);
  const int64_t chunks = (d.N + kTokensPerChunk - 1) / kTokensPerChunk;
  // Per chunk: how many of its tokens chose (g, m), and the sum of their p[g, m].
  std::vector<double> count(size_t(chunks * d.G * d.M), 0.0), psum(count.size(), 0.0);
  const float* zp = z.data_ptr<float>();
  float *pp = out.probs.data_ptr<float>(), *spp = out.sp.data_ptr<float>(), *wp = out.w.data_ptr<float>();
  int64_t* selp = out.selected.data_ptr<int64_t>();
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      double* cnt = count.data() + c * d.G * d.M;
      double* ps = psum.data() + c * d.G * d.M;
      for (int64_t i = c * kTokensPerChunk; i < std::min(d.N, (c + 1) * kTokensPerChunk); ++i) {
        const int64_t gm = i * d.G * d.M, gk = i * d.G * k;
        route_token(zp + gm, d, eps, pp + gm, selp + gk, spp + gk, wp + gk);
        for (int64_t j = 0; j < d.G * d.M; ++j) ps[j] += pp[gm + j];
        for (int64_t j = 0; j < d.G * k; ++j) cnt[(j / k) * d.M + selp[gk + j]] += 1.0;
      }
    }
  });
  // f[g,m] = count / N, P[g,m] = psum / N; aux = mean_g M * sum_m f P. Chunks summed in order.
  out.f.assign(size_t(d.G * d.M), 0.0);
  std::vector<double> P(out.f.size(), 0.0);
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t j = 0; j < d.G * d.M; ++j) out.f[j] += count[c * d.G * d.M + j], P[j] += psum[c * d.G * d.M + j];
  double aux = 0.0;
  for (int64_t j = 0; j < d.G * d.M; ++j) {
    out.f[j] /= double(d.N), P[j] /= double(d.N);
    aux += out.f[j] * P[j];
  }
  out.aux = at::scalar_tensor(aux * double(d.M) / double(d.G), z.options());
  return out;
}

class FusedRoutingFunction : public torch::autograd::Function<FusedRoutingFunction> {
 public:
  // logits [N, G, M] -> {probs [N,G,M], selected [N,G,k], selected_probs [N,G,k], weights [N,G,k], aux []}
  static torch::autograd::tensor_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits,
                                              int64_t k, double eps) {
    Forward f = route_forward(logits, k, eps);
    at::Tensor f_t = at::from_blob(f.f.data(), {logits.size(1), logits.size(2)}, at::kDouble).clone();
    ctx->save_for_backward({f.probs, f.selected, f_t});
    ctx->saved_data["eps"] = eps;
    ctx->mark_non_differentiable({f.probs, f.selected});
    ctx->set_materialize_grads(false);
    return {f.probs, f.selected, f.sp, f.w, f.aux};
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& probs = saved[0];
    const at::Tensor& selected = saved[1];
    const at::Tensor f = saved[2].contiguous();
    const double eps = ctx->saved_data["eps"].toDouble();
    const Dims d{probs.size(0), probs.size(1), probs.size(2), selected.size(2)};
    const at::Tensor g_sp = grads[2].defined() ? grads[2].to(at::kFloat).contiguous() : at::Tensor();
    const at::Tensor g_w = grads[3].defined() ? grads[3].to(at::kFloat).contiguous() : at::Tensor();
    const double g_aux = grads[4].defined() ? grads[4].item<double>() : 0.0;
    at::Tensor dz = at::empty_like(probs);
    // d aux / d p[i,g,m] = M f[g,m] / (G N), the same for every token.
    std::vector<float> aux_dp(size_t(d.G * d.M));
    for (int64_t j = 0; j < d.G * d.M; ++j)
      aux_dp[j] = float(g_aux * double(d.M) * f.data_ptr<double>()[j] / double(d.G * d.N));
    const float *pp = probs.data_ptr<float>(), *gsp = g_sp.defined() ? g_sp.data_ptr<float>() : nullptr;
    const float* gw = g_w.defined() ? g_w.data_ptr<float>() : nullptr;
    const int64_t* selp = selected.data_ptr<int64_t>();
    float* dzp = dz.data_ptr<float>();
    at::parallel_for(0, d.N, kTokensPerChunk, [&](int64_t begin, int64_t end) {
      std::vector<float> dsp(size_t(d.G * d.k)), dp(size_t(d.M));
      for (int64_t i = begin; i < end; ++i) {
        const float* p = pp + i * d.G * d.M;
        const int64_t* sel = selp + i * d.G * d.k;
        float S = 0.f;
        for (int64_t j = 0; j < d.G * d.k; ++j) S += p[(j / d.k) * d.M + sel[j]];
        const float D = std::max(S, float(eps));
        // w = sp / D: d sp = g_w / D - [S >= eps] (sum g_w sp) / D^2 (clamp_min passes the gradient at S >= eps).
        float dot = 0.f;
        if (gw)
          for (int64_t j = 0; j < d.G * d.k; ++j) dot += gw[i * d.G * d.k + j] * p[(j / d.k) * d.M + sel[j]];
        const float through_denominator = S >= float(eps) ? dot / (D * D) : 0.f;
        for (int64_t j = 0; j < d.G * d.k; ++j)
          dsp[j] = (gw ? gw[i * d.G * d.k + j] / D - through_denominator : 0.f) + (gsp ? gsp[i * d.G * d.k + j] : 0.f);
        for (int64_t g = 0; g < d.G; ++g) {
          const float* pg = p + g * d.M;
          for (int64_t m = 0; m < d.M; ++m) dp[m] = aux_dp[g * d.M + m];
          for (int64_t r = 0; r < d.k; ++r) dp[sel[g * d.k + r]] += dsp[g * d.k + r];
          float s = 0.f;  // softmax backward: dz = p (dp - sum_m p dp)
          for (int64_t m = 0; m < d.M; ++m) s += pg[m] * dp[m];
          float* dzg = dzp + (i * d.G + g) * d.M;
          for (int64_t m = 0; m < d.M; ++m) dzg[m] = pg[m] * (dp[m] - s);
        }
      }
    });
    return {dz, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

FusedRouting fused_routing(const at::Tensor& logits, int64_t k, double eps) {
  check_on_cpu("fused_routing", "logits", logits);
  TORCH_CHECK(logits.dim() == 4 && logits.scalar_type() == at::kFloat,
              "fused_routing: logits must be [B, T, G, M] fp32, got ", logits.sizes(), " ", logits.scalar_type());
  const int64_t B = logits.size(0), T = logits.size(1), G = logits.size(2), M = logits.size(3);
  TORCH_CHECK(k >= 1 && k <= M, "route_tokens: k = ", k, " outside 1..", M);
  torch::autograd::tensor_list out;
  if (c10::GradMode::is_enabled() && logits.requires_grad()) {
    out = FusedRoutingFunction::apply(logits.reshape({B * T, G, M}), k, eps);
  } else {  // no gradient wanted (decode, evaluation): no autograd node
    Forward f = route_forward(logits.reshape({B * T, G, M}), k, eps);
    out = {f.probs, f.selected, f.sp, f.w, f.aux};
  }
  return {out[0].view({B, T, G, M}), out[1].view({B, T, G, k}), out[2].view({B, T, G, k}),
          out[3].view({B, T, G, k}), out[4]};
}

}  // namespace gqe::kernels
