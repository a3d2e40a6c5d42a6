// GQE's routed query projection, sparse: only the k*G selected experts' query vectors per token are
// computed. Tokens are bucketed by chosen expert and each expert does one matrix product over just its
// tokens (no dense N-head projection, no per-token weight gather, no copy of the weight): a chunk of an
// expert's x rows is gathered, transposed, into per-thread scratch and W_e [d_h, d] multiplies it in
// place. Each output is accumulated in a fixed order, so a token's query never depends on which other
// tokens were routed with it (bitwise causality).
// Backward (custom autograd function): per expert dW = dQ_rows^T X_rows and dX_rows += dQ_rows W.
// Reference twins: kernels::routed_query_projection_reference, kernels::narrow_projection_reference.
#pragma once
#include <ATen/ATen.h>

#include <utility>

namespace gqe::kernels {

// x:        [B, T, d]
// weight:   [N*d_h, d], expert (g, m) owns rows [(g*M + m)*d_h, (g*M + m + 1)*d_h) (GQEAttention::q_proj)
// selected: [B, T, G, k] int64 expert index m in 0..M-1 (route_tokens' order)
// returns   [B, T, G*k, d_h]: slot head g*k + r of token i is q = W_Q[g, selected[i,g,r]] x_i.
at::Tensor routed_query_projection(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected,
                                   int64_t experts_per_group, int64_t head_dim);

// routed_query_projection's backward on its own, for callers that keep their own autograd (the Python
// package's ops): grad_out [B, T, G*k, d_h] -> (dx [B, T, d], dweight [N*d_h, d]), the same computation as
// the autograd function's backward.
std::pair<at::Tensor, at::Tensor> routed_query_projection_backward(const at::Tensor& x, const at::Tensor& weight,
                                                                   const at::Tensor& selected,
                                                                   int64_t experts_per_group, int64_t head_dim,
                                                                   const at::Tensor& grad_out);

// x [B, T, d] . weight^T for a narrow weight [d_h, d]: every token as one bucket of a single expert, so the
// same register-blocked kernel runs it, which beats a BLAS sgemm at so few outputs (docs/kernels.md has the
// measurements). Returns [B, T, 1, d_h]; differentiable.
at::Tensor narrow_projection(const at::Tensor& x, const at::Tensor& weight);
// Its backward on its own: grad_out [B, T, 1, d_h] -> (dx [B, T, d], dweight [d_h, d]).
std::pair<at::Tensor, at::Tensor> narrow_projection_backward(const at::Tensor& x, const at::Tensor& weight,
                                                             const at::Tensor& grad_out);

}  // namespace gqe::kernels
