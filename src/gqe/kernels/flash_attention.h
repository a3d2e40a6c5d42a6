// Causal flash attention on the CPU, GQA-native, forward and backward (fp32).
//
// The KV group is the unit of work: a K/V tile is packed once and applied to every query row of every
// head that uses that group (query rows of a block are (position, head) pairs, position-major).
// Tiled online softmax: no n x n matrix is ever formed; forward saves only the row log-sum-exp and the
// backward recomputes the probabilities (FlashAttention-2). Causality is index arithmetic: a query block
// visits only the key tiles up to its last position, and only tiles on the diagonal are masked.
// Query rows carry their positions (q_start + row), so one kernel serves prefill, chunked prefill and
// decode against a KV cache. The reference twin is kernels::flash_attention_reference (reference.h).
#pragma once
#include <ATen/ATen.h>

#include <tuple>

namespace gqe::kernels {

struct FlashForward {
  at::Tensor out;  // [B, Tq, Hq, d_h]
  at::Tensor lse;  // [B, Tq, Hq] log-sum-exp of each row's scaled scores (for the backward)
};

// q: [B, Tq, Hq, d_h] fp32, queries at positions q_start .. q_start+Tq-1
// k: [B, Tk, G, d_h]  fp32, keys at positions 0 .. Tk-1 (post-RoPE); Hq % G == 0, q_start + Tq <= Tk
// v: [B, Tk, G, d_h]  fp32
// Head h attends against KV head h / (Hq / G), i.e. heads g*M .. g*M+M-1 use group g.
FlashForward flash_attention_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     int64_t q_start);

// Gradients of flash_attention_forward given dout [B, Tq, Hq, d_h]; returns (dq, dk, dv) shaped like q, k, v.
// Keys after the last query position get zero gradient.
std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_attention_backward(const at::Tensor& q, const at::Tensor& k,
                                                                        const at::Tensor& v, const at::Tensor& out,
                                                                        const at::Tensor& lse, const at::Tensor& dout,
                                                                        int64_t q_start);

// Differentiable (torch::autograd::Function): same arguments and result as flash_attention_forward().out.
at::Tensor flash_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start);

}  // namespace gqe::kernels
