// Causal scaled-dot-product attention in plain libtorch ops: the reference twin of the fast kernels
// in src/gqe/kernels/. Materialises the full score matrix; clear, not fast.
#pragma once
#include <ATen/ATen.h>

namespace gqe {

// q: [B, Tq, H, d_h]   queries at positions q_start .. q_start+Tq-1
// k: [B, Tk, H, d_h]   keys at positions 0 .. Tk-1 (post-RoPE), one K/V head per query head
// v: [B, Tk, H, d_h]
// returns [B, Tq, H, d_h]; query at position p attends to keys 0..p (softmax scaled by 1/sqrt(d_h)).
at::Tensor causal_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start);

}  // namespace gqe
