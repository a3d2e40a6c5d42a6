// GQE's routing on the CPU in one pass over the router logits (fp32, differentiable): per token and group the
// softmax over the M experts, the top-k (descending, the lower index first among equal probabilities), the
// selected probabilities, the renormalised slot weights (joint over all groups and ranks), and the
// statistics of the load-balancing loss. One autograd node instead of the dozen libtorch ops (and their
// backward nodes) of the plain composition, which at small shapes cost more than the routing's arithmetic.
// Reference twin: route_tokens + renormalised_weights + load_balancing_loss (attention/router.h), the
// method written in libtorch ops; tests/kernels/fused_routing_test.cpp compares the two.
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels {

struct FusedRouting {
  at::Tensor probs;           // [B, T, G, M] softmax within each group; no gradient (analytics)
  at::Tensor selected;        // [B, T, G, k] int64 expert indices, descending probability
  at::Tensor selected_probs;  // [B, T, G, k] p at the selected experts (differentiable)
  at::Tensor weights;         // [B, T, G, k] selected_probs / max(sum over G and k, eps) (differentiable)
  at::Tensor aux_loss;        // scalar: mean_g M * sum_m f[g,m] * P[g,m] (differentiable through P)
};

// logits: [B, T, G, M] fp32 on the CPU; 1 <= k <= M; eps: the weights' denominator floor.
// Sums over tokens (P, f) run in fixed chunks of tokens, so the result does not depend on the thread count.
FusedRouting fused_routing(const at::Tensor& logits, int64_t k, double eps);

}  // namespace gqe::kernels
