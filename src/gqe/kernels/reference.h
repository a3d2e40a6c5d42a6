// The reference twins of the fast kernels: the same operations in plain libtorch ops, clear rather than
// fast, on any device and dtype. Tests compare every fast kernel (CPU in src/gqe/kernels/, CUDA in
// src/gqe/kernels/cuda/) against its twin here; the attention blocks run them when the config asks for
// attention.implementation "reference" or when no fast kernel fits the tensors (e.g. float64).
// Which kernel has which twin, and which test compares them: kKernelTwins (twins.h).
#pragma once
#include <ATen/ATen.h>

#include "gqe/kernels/gqe_decode.h"  // GqeDecodeOutput

namespace gqe::kernels {

// Causal attention, GQA-native like the fast kernels: K/V are expanded to the query heads first and the
// full score matrix is formed.
// q: [B, Tq, Hq, d_h]  queries at positions q_start .. q_start+Tq-1
// k: [B, Tk, G, d_h]   keys at positions 0 .. Tk-1 (post-RoPE); Hq % G == 0, q_start + Tq <= Tk
// v: [B, Tk, G, d_h]
// k and v may have a narrower dtype than q (bf16 from a bf16 KV cache): they are widened to q's dtype.
// returns [B, Tq, Hq, d_h]; head h attends against KV head h / (Hq / G), query at position p to keys 0..p
// (softmax scaled by 1/sqrt(d_h)).
at::Tensor flash_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     int64_t q_start);

// GQE's decode step the obvious way: per sequence, the slot heads by flash_attention_reference against its
// keys 0..len-1, and the shared head against the mean over the G KV heads, formed explicitly.
// Same arguments and results as kernels::gqe_decode (gqe_decode.h), any dtype:
// q [B, 1, Hq, d_h], q_shared [B, 1, 1, d_h] or undefined, k/v [B, Tk, G, d_h] (q's dtype or narrower, widened
// to it first), lengths [B] int64 in
// 1..Tk or undefined (all Tk); sequence b's query is at position lengths[b] - 1.
GqeDecodeOutput gqe_decode_reference(const at::Tensor& q, const at::Tensor& q_shared, const at::Tensor& k,
                                     const at::Tensor& v, const at::Tensor& lengths = {});

// Rotary position embedding, rotate-half form (GPT-NeoX / Llama layout).
// x: [B, T, H, d_h] at positions start..start+T-1; returns the rotated tensor (same shape and dtype).
// Pairs (i, i + d_h/2) rotate by angle pos * theta^(-2i/d_h).
at::Tensor rope_reference(const at::Tensor& x, int64_t start, double theta);

// GQE's routed query projection the obvious way: all N experts' queries, then the selected ones.
// x:        [B, T, d]
// weight:   [N*d_h, d], expert (g, m) owns rows [(g*M + m)*d_h, (g*M + m + 1)*d_h)
// selected: [B, T, G, k] int64 expert index m in 0..M-1
// returns   [B, T, G*k, d_h]: slot head g*k + r of token i is W_Q[g, selected[i,g,r]] x_i.
at::Tensor routed_query_projection_reference(const at::Tensor& x, const at::Tensor& weight,
                                             const at::Tensor& selected, int64_t experts_per_group,
                                             int64_t head_dim);

// x [B, T, d] . weight^T for weight [d_h, d]; returns [B, T, 1, d_h].
at::Tensor narrow_projection_reference(const at::Tensor& x, const at::Tensor& weight);

// W_O's input for variant gqe by concatenation: slots [B, T, G*k, d_h], weights [B, T, G, k], shared
// [B, T, 1, d_h] -> [B, T, (G*k + 2) * d_h] = (the slots, sum_{g,r} w[g,r] slot[g*k+r], shared); any dtype
// (the result has the slots' dtype).
at::Tensor gqe_slots_reference(const at::Tensor& slots, const at::Tensor& weights, const at::Tensor& shared);

// The k largest of each row of probs [..., M], descending, the lower index first among equal values
// (a stable descending sort, cut at k); returns [..., k] int64.
at::Tensor top_k_reference(const at::Tensor& probs, int64_t k);

}  // namespace gqe::kernels
