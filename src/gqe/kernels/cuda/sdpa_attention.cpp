#include "gqe/kernels/cuda/sdpa_attention.h"

namespace gqe::kernels::cuda {

at::Tensor sdpa_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "sdpa_attention: expected [B, T, H, d_h] tensors, got ",
              q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(k.sizes() == v.sizes() && q.size(0) == k.size(0) && q.size(3) == k.size(3),
              "sdpa_attention: q ", q.sizes(), " does not match k/v ", k.sizes());
  TORCH_CHECK(q.size(2) % k.size(2) == 0, "sdpa_attention: ", q.size(2), " query heads over ", k.size(2), " KV heads");
  TORCH_CHECK(q.device() == k.device() && q.device() == v.device(), "sdpa_attention: q on ", q.device(), ", k on ",
              k.device(), ", v on ", v.device());
  const int64_t Tq = q.size(1), last = q_start + Tq;  // keys at positions >= last are never visible
  TORCH_CHECK(q_start >= 0 && last <= k.size(1), "sdpa_attention: queries at ", q_start, "..", last - 1,
              " reach past the last key ", k.size(1) - 1);
  // SDPA wants [B, H, T, d_h]; these are views, and the backends accept the strides.
  at::Tensor qh = q.transpose(1, 2);
  at::Tensor kh = k.narrow(1, 0, last).transpose(1, 2), vh = v.narrow(1, 0, last).transpose(1, 2);
  // The kernel may run q in bf16 under autocast while k/v come from a cache in another dtype.
  if (kh.scalar_type() != qh.scalar_type()) kh = kh.to(qh.scalar_type()), vh = vh.to(qh.scalar_type());
  at::Tensor o;
  if (q_start == 0) {
    // Prefill: SDPA's is_causal aligns the mask top-left, which is ours when Tq == Tk.
    o = at::scaled_dot_product_attention(qh, kh, vh, {}, 0.0, /*is_causal=*/true, std::nullopt, /*enable_gqa=*/true);
  } else if (Tq == 1) {
    // Decode: the one query sees every remaining key; no mask.
    o = at::scaled_dot_product_attention(qh, kh, vh, {}, 0.0, /*is_causal=*/false, std::nullopt, /*enable_gqa=*/true);
  } else {
    // Chunked prefill: the mask aligns bottom-right (query row i at position q_start + i). An explicit mask
    // rules the flash backend out and not every other backend takes enable_gqa, so K/V are expanded.
    const int64_t M = q.size(2) / k.size(2);
    at::Tensor qpos = at::arange(q_start, last, q.options().dtype(at::kLong)).unsqueeze(1);
    at::Tensor kpos = at::arange(0, last, q.options().dtype(at::kLong)).unsqueeze(0);
    at::Tensor visible = kpos <= qpos;  // [Tq, last], broadcast over batch and heads
    o = at::scaled_dot_product_attention(qh, kh.repeat_interleave(M, 1), vh.repeat_interleave(M, 1), visible, 0.0,
                                         /*is_causal=*/false);
  }
  return o.transpose(1, 2);  // [B, Tq, Hq, d_h]
}

}  // namespace gqe::kernels::cuda
