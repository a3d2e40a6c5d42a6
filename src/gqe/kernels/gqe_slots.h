// The input of GQE's W_O (variant gqe) in one buffer, on the CPU (fp32, differentiable): per token the k*G
// hard slots, the renormalised weighted sum of them, and the shared head's output, written straight into
// [.., (G*k + 2) * d_h] with a hand-written backward. One autograd node instead of the plain composition's
// product, sum and concatenation (and their backward nodes and the concatenation's copy).
// Reference twin: kernels::gqe_slots_reference (reference.h).
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels {

// slots:   [B, T, G*k, d_h] fp32 slot-head outputs (slot g*k + r: the token's r-th choice in group g)
// weights: [B, T, G, k] fp32 renormalised weights of the slots
// shared:  [B, T, 1, d_h] fp32 shared-head output
// returns  [B, T, (G*k + 2) * d_h]: the slots in order, then sum_{g,r} w[g,r] * slot[g*k+r], then shared.
at::Tensor gqe_slots(const at::Tensor& slots, const at::Tensor& weights, const at::Tensor& shared);

}  // namespace gqe::kernels
