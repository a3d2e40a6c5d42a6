// Causal attention on the GPU through libtorch's scaled_dot_product_attention, whose flash, cuDNN and
// memory-efficient backends never form the n x n score matrix. GQA-native: K/V stay at G heads
// (enable_gqa) wherever no explicit mask is needed. Reference twin: kernels::flash_attention_reference.
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels::cuda {

// q: [B, Tq, Hq, d_h] queries at positions q_start .. q_start+Tq-1
// k: [B, Tk, G, d_h]  keys at positions 0 .. Tk-1 (post-RoPE); Hq % G == 0, q_start + Tq <= Tk
// v: [B, Tk, G, d_h]
// returns [B, Tq, Hq, d_h] (q's dtype); differentiable. Works on any device libtorch's SDPA supports
// (the tests run it on the CPU too); the CUDA path calls it with CUDA tensors.
at::Tensor sdpa_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start);

}  // namespace gqe::kernels::cuda
