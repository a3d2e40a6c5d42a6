#include "gqe/kernels/cuda/sdpa_attention.h"

#include <ATen/SDPBackend.h>
#include <c10/core/GradMode.h>

namespace gqe::kernels::cuda {
namespace {

void check_operands(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const char* what) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, what, ": expected [B, T, H, d_h] tensors, got ", q.sizes(),
              ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(k.sizes() == v.sizes() && q.size(0) == k.size(0) && q.size(3) == k.size(3), what, ": q ", q.sizes(),
              " does not match k/v ", k.sizes());
  TORCH_CHECK(q.size(2) % k.size(2) == 0, what, ": ", q.size(2), " query heads over ", k.size(2), " KV heads");
  TORCH_CHECK(q.device() == k.device() && q.device() == v.device(), what, ": q on ", q.device(), ", k on ", k.device(),
              ", v on ", v.device());
}

// A single new position per sequence: the Hq / G query heads of KV group g become Hq / G query *rows* of one
// head g, so the call is plain multi-head attention over the G KV heads, K/V never expanded and no GQA
// support asked of the backend (flash-decoding's layout). q [B, 1, Hq, d_h] -> [B, G, Hq / G, d_h].
at::Tensor decode_rows(const at::Tensor& q, int64_t G) {
  return q.reshape({q.size(0), G, q.size(2) / G, q.size(3)});
}

bool wants_grad(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return c10::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
}

// Attention output and row log-sum-exp of qh [B, H, Tq, d_h] over kh, vh [B, G, Tk, d_h]: causal with the mask
// aligned top-left (right for Tq == Tk) or no mask. Only what returns the log-sum-exp: libtorch's flash kernel
// (on CUDA in bf16 / fp16, GQA-native), its CPU twin elsewhere (K/V expanded to H heads there).
std::pair<at::Tensor, at::Tensor> attend_with_lse(const at::Tensor& qh, const at::Tensor& kh, const at::Tensor& vh,
                                                  bool causal) {
  if (qh.is_cuda()) {
    auto r = at::_scaled_dot_product_flash_attention(qh, kh, vh, 0.0, causal);
    return {std::get<0>(r), std::get<1>(r)};
  }
  const int64_t rep = qh.size(1) / kh.size(1);
  at::Tensor ke = rep > 1 ? kh.repeat_interleave(rep, 1) : kh, ve = rep > 1 ? vh.repeat_interleave(rep, 1) : vh;
  auto r = at::_scaled_dot_product_flash_attention_for_cpu(qh, ke, ve, 0.0, causal);
  return {std::get<0>(r), std::get<1>(r)};
}

}  // namespace

bool chunk_by_lse_merge(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (wants_grad(q, k, v)) return false;  // the flash entry point with the log-sum-exp has no backward here
  if (!q.is_cuda()) return q.is_cpu();
  const at::ScalarType t = q.scalar_type();
  return (t == at::kBFloat16 || t == at::kHalf) && q.size(3) <= 256 && q.size(3) % 8 == 0;
}

at::Tensor merge_by_lse(const at::Tensor& o1, const at::Tensor& lse1, const at::Tensor& o2, const at::Tensor& lse2) {
  // o = (o1 e^{lse1} + o2 e^{lse2}) / (e^{lse1} + e^{lse2}), in fp32 (or the outputs' dtype if wider).
  const at::ScalarType acc = at::promote_types(o1.scalar_type(), at::kFloat);
  at::Tensor l1 = lse1.to(acc), l2 = lse2.to(acc);
  at::Tensor lse = at::logaddexp(l1, l2);
  at::Tensor w1 = (l1 - lse).exp_().unsqueeze(-1), w2 = (l2 - lse).exp_().unsqueeze(-1);
  return (o1.to(acc) * w1 + o2.to(acc) * w2).to(o1.scalar_type());
}

at::Tensor sdpa_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start) {
  check_operands(q, k, v, "sdpa_attention");
  const int64_t Tq = q.size(1), last = q_start + Tq;  // keys at positions >= last are never visible
  TORCH_CHECK(q_start >= 0 && last <= k.size(1), "sdpa_attention: queries at ", q_start, "..", last - 1,
              " reach past the last key ", k.size(1) - 1);
  // SDPA wants [B, H, T, d_h]; these are views, and the backends accept the strides.
  at::Tensor qh = q.transpose(1, 2);
  at::Tensor kh = k.narrow(1, 0, last).transpose(1, 2), vh = v.narrow(1, 0, last).transpose(1, 2);
  // The kernel may run q in bf16 under autocast while k/v come from a cache in another dtype.
  if (kh.scalar_type() != qh.scalar_type()) kh = kh.to(qh.scalar_type()), vh = vh.to(qh.scalar_type());
  if (q_start == 0) {
    // Prefill: SDPA's is_causal aligns the mask top-left, which is ours when Tq == Tk.
    at::Tensor o = at::scaled_dot_product_attention(qh, kh, vh, {}, 0.0, /*is_causal=*/true, std::nullopt,
                                                    /*enable_gqa=*/true);
    return o.transpose(1, 2);  // [B, Tq, Hq, d_h]
  }
  if (Tq == 1) {
    // Decode: the one query sees every remaining key; no mask.
    const int64_t B = q.size(0), Hq = q.size(2), dh = q.size(3);
    at::Tensor o = at::scaled_dot_product_attention(decode_rows(q, k.size(2)), kh, vh, {}, 0.0, /*is_causal=*/false);
    return o.reshape({B, 1, Hq, dh});
  }
  if (chunk_by_lse_merge(q, k, v)) {
    // Chunked prefill against a cache: the keys before the chunk (every query sees all of them: no mask) and
    // the chunk's own keys (causal, Tq x Tq: top-left is right), two mask-free calls the flash kernel takes,
    // merged by their row log-sum-exps, instead of one call with an explicit mask and expanded K/V.
    auto [o_past, lse_past] = attend_with_lse(qh, kh.narrow(2, 0, q_start), vh.narrow(2, 0, q_start), false);
    auto [o_cur, lse_cur] = attend_with_lse(qh, kh.narrow(2, q_start, Tq), vh.narrow(2, q_start, Tq), true);
    return merge_by_lse(o_past, lse_past, o_cur, lse_cur).transpose(1, 2);
  }
  // Chunked prefill with gradients (or fp32 on CUDA, which the flash kernel does not take): the mask aligns
  // bottom-right (query row i at position q_start + i); an explicit mask rules flash out and not every other
  // backend takes enable_gqa, so K/V are expanded.
  const int64_t M = q.size(2) / k.size(2);
  at::Tensor qpos = at::arange(q_start, last, q.options().dtype(at::kLong)).unsqueeze(1);
  at::Tensor kpos = at::arange(0, last, q.options().dtype(at::kLong)).unsqueeze(0);
  at::Tensor visible = kpos <= qpos;  // [Tq, last], broadcast over batch and heads
  at::Tensor o = at::scaled_dot_product_attention(qh, kh.repeat_interleave(M, 1), vh.repeat_interleave(M, 1), visible,
                                                  0.0, /*is_causal=*/false);
  return o.transpose(1, 2);  // [B, Tq, Hq, d_h]
}

at::Tensor sdpa_decode_ragged(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& lengths) {
  check_operands(q, k, v, "sdpa_decode_ragged");
  TORCH_CHECK(q.size(1) == 1, "sdpa_decode_ragged: one query per sequence, got ", q.sizes());
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == q.size(0), "sdpa_decode_ragged: lengths ", lengths.sizes(),
              " for ", q.size(0), " sequences");
  const int64_t B = q.size(0), Hq = q.size(2), dh = q.size(3), Tk = k.size(1);
  at::Tensor kh = k.transpose(1, 2).to(q.scalar_type()), vh = v.transpose(1, 2).to(q.scalar_type());  // [B, G, Tk, d_h]
  at::Tensor qh = decode_rows(q, k.size(2));
  // Sequence b sees its keys 0 .. lengths[b] - 1: a [B, 1, 1, Tk] mask, broadcast over heads and rows.
  at::Tensor len = lengths.to(q.device(), at::kLong).view({B, 1, 1, 1});
  at::Tensor visible = at::arange(Tk, len.options()).view({1, 1, 1, Tk}) < len;
  at::Tensor o = at::scaled_dot_product_attention(qh, kh, vh, visible, 0.0, /*is_causal=*/false);
  return o.reshape({B, 1, Hq, dh});
}

std::string sdpa_backend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start) {
  check_operands(q, k, v, "sdpa_backend");
  const int64_t Tq = q.size(1), last = q_start + Tq;
  at::Tensor qh = q.transpose(1, 2), kh = k.narrow(1, 0, last).transpose(1, 2), vh = v.narrow(1, 0, last).transpose(1, 2);
  int64_t choice;
  if (q_start == 0) {
    choice = at::_fused_sdp_choice(qh, kh, vh, {}, 0.0, /*is_causal=*/true, std::nullopt, /*enable_gqa=*/true);
  } else if (Tq == 1) {
    choice = at::_fused_sdp_choice(decode_rows(q, k.size(2)), kh, vh, {}, 0.0, /*is_causal=*/false);
  } else if (chunk_by_lse_merge(q, k, v)) {
    return q.is_cuda() ? "flash_attention x2 (merged by log-sum-exp)" : "cpu flash x2 (merged by log-sum-exp)";
  } else {
    at::Tensor visible = at::ones({Tq, last}, q.options().dtype(at::kBool));
    const int64_t M = q.size(2) / k.size(2);
    choice = at::_fused_sdp_choice(qh, kh.repeat_interleave(M, 1), vh.repeat_interleave(M, 1), visible, 0.0, false);
  }
  switch (static_cast<at::SDPBackend>(choice)) {
    case at::SDPBackend::math: return "math";
    case at::SDPBackend::flash_attention: return "flash_attention";
    case at::SDPBackend::efficient_attention: return "efficient_attention";
    case at::SDPBackend::cudnn_attention: return "cudnn_attention";
    case at::SDPBackend::overrideable: return "overrideable";
    default: return "none (no backend takes these operands)";
  }
}

void pin_sdpa_backend(const std::string& name) {
  auto& ctx = at::globalContext();
  const bool any = name == "auto";
  TORCH_CHECK(any || name == "flash" || name == "cudnn" || name == "efficient" || name == "math",
              "SDPA backend '", name, "': expected auto, flash, cudnn, efficient or math");
  ctx.setSDPUseFlash(any || name == "flash");
  ctx.setSDPUseCuDNN(any || name == "cudnn");
  ctx.setSDPUseMemEfficient(any || name == "efficient");
  ctx.setSDPUseMath(any || name == "math");
}

}  // namespace gqe::kernels::cuda
