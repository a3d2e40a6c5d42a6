#include "gqe/kernels/reference.h"

#include <cmath>
#include <limits>
#include <vector>

namespace gqe::kernels {

at::Tensor flash_attention_reference(const at::Tensor& q, const at::Tensor& k_in, const at::Tensor& v_in,
                                     int64_t q_start) {
  // K/V in a narrower dtype than q (a bf16 KV cache) are widened to q's first.
  const at::Tensor k = k_in.to(q.scalar_type()), v = v_in.to(q.scalar_type());
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: expected [B, T, H, d_h] tensors");
  TORCH_CHECK(k.sizes() == v.sizes() && q.size(0) == k.size(0) && q.size(3) == k.size(3),
              "attention: q/k/v shapes do not match");
  TORCH_CHECK(q.size(2) % k.size(2) == 0, "attention: ", q.size(2), " query heads over ", k.size(2),
              " KV heads");
  TORCH_CHECK(q_start >= 0 && q_start + q.size(1) <= k.size(1), "attention: queries reach past the last key");
  const int64_t Tq = q.size(1), Tk = k.size(1), M = q.size(2) / k.size(2);
  const double scale = 1.0 / std::sqrt(double(q.size(3)));
  at::Tensor qh = q.permute({0, 2, 1, 3});                            // [B, Hq, Tq, d_h]
  at::Tensor kh = k.repeat_interleave(M, 2).permute({0, 2, 1, 3});   // [B, Hq, Tk, d_h]
  at::Tensor vh = v.repeat_interleave(M, 2).permute({0, 2, 1, 3});
  at::Tensor scores = at::matmul(qh, kh.transpose(-2, -1)) * scale;  // [B, Hq, Tq, Tk]
  at::Tensor qpos = at::arange(q_start, q_start + Tq, q.options().dtype(at::kLong)).unsqueeze(1);
  at::Tensor kpos = at::arange(0, Tk, q.options().dtype(at::kLong)).unsqueeze(0);
  at::Tensor future = kpos > qpos;  // [Tq, Tk]: key after the query's position
  scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
  at::Tensor probs = at::softmax(scores, -1);
  return at::matmul(probs, vh).permute({0, 2, 1, 3});  // [B, Tq, Hq, d_h]
}

GqeDecodeOutput gqe_decode_reference(const at::Tensor& q, const at::Tensor& q_shared, const at::Tensor& k_in,
                                     const at::Tensor& v_in, const at::Tensor& lengths) {
  // bf16 K/V widened to q's dtype before the mean is formed (the mean is not rounded back to bf16).
  const at::Tensor k = k_in.to(q.scalar_type()), v = v_in.to(q.scalar_type());
  TORCH_CHECK(q.dim() == 4 && q.size(1) == 1 && k.dim() == 4, "decode: expected q [B, 1, Hq, d_h], k/v [B, Tk, G, d_h]");
  std::vector<at::Tensor> slots, shared;
  for (int64_t b = 0; b < q.size(0); ++b) {
    const int64_t len = lengths.defined() ? lengths[b].item<int64_t>() : k.size(1);
    at::Tensor kb = k.narrow(0, b, 1).narrow(1, 0, len), vb = v.narrow(0, b, 1).narrow(1, 0, len);
    slots.push_back(flash_attention_reference(q.narrow(0, b, 1), kb, vb, len - 1));
    if (q_shared.defined())
      shared.push_back(flash_attention_reference(q_shared.narrow(0, b, 1), kb.mean(2, true), vb.mean(2, true), len - 1));
  }
  return {at::cat(slots, 0), shared.empty() ? at::Tensor() : at::cat(shared, 0)};
}

at::Tensor rope_reference(const at::Tensor& x, int64_t start, double theta) {
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

at::Tensor routed_query_projection_reference(const at::Tensor& x, const at::Tensor& weight,
                                             const at::Tensor& selected, int64_t experts_per_group,
                                             int64_t head_dim) {
  const int64_t B = x.size(0), T = x.size(1), G = selected.size(2), k = selected.size(3);
  at::Tensor all = at::matmul(x, weight.t()).view({B, T, G, experts_per_group, head_dim});
  return all.gather(3, selected.unsqueeze(-1).expand({B, T, G, k, head_dim})).reshape({B, T, G * k, head_dim});
}

at::Tensor narrow_projection_reference(const at::Tensor& x, const at::Tensor& weight) {
  return at::matmul(x, weight.t()).unsqueeze(2);
}

at::Tensor top_k_reference(const at::Tensor& probs, int64_t k) {
  TORCH_CHECK(k >= 1 && k <= probs.size(-1), "top-k: k = ", k, " outside 1..", probs.size(-1));
  at::Tensor order = std::get<1>(probs.sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true));
  return order.narrow(-1, 0, k).contiguous();
}

at::Tensor gqe_slots_reference(const at::Tensor& slots, const at::Tensor& weights, const at::Tensor& shared) {
  const int64_t B = slots.size(0), T = slots.size(1), S = slots.size(2), dh = slots.size(3);
  const at::Tensor w = weights.reshape({B, T, S, 1});
  at::Tensor obar = (w * slots).sum(2);  // [B, T, d_h]
  return at::cat({slots.reshape({B, T, S * dh}), obar.to(slots.scalar_type()),
                  shared.reshape({B, T, dh}).to(slots.scalar_type())}, -1);
}

}  // namespace gqe::kernels
