// GQE routing: per-group softmax, top-k with ties broken by index, the renormalised slot weights,
// and the Switch-style load-balancing loss (docs/method.md, "Forward" steps 1 and 3, "Load-balancing loss").
#pragma once
#include <ATen/ATen.h>

#include "gqe/kernels/reference.h"

namespace gqe {

struct Routing {
  at::Tensor probs;           // [B, T, G, M] softmax within each group (differentiable from route_tokens)
  at::Tensor selected;        // [B, T, G, k] int64 expert index m, ordered by descending probability
  at::Tensor selected_probs;  // [B, T, G, k] p at the selected experts (differentiable)
  at::Tensor weights;         // [B, T, G, k] renormalised_weights(selected_probs): set by weigh_routing
  at::Tensor aux_loss;        // scalar load_balancing_loss: set by weigh_routing
};

// The top-k of each row: probs [..., M] -> [..., k] int64, descending, the lower index first among equals.
// The attention path supplies its kernel (AttentionPath::top_k); every one follows that tie rule.
using TopK = at::Tensor (*)(const at::Tensor& probs, int64_t k);

// The router's logits: x [B, T, d] times weight [G*M, d] transposed -> [B, T, G*M], in at least fp32 whatever
// autocast is on (float64 stays float64). Softmax and top-k follow the logits' dtype, and bf16 logits flip
// choices on near-ties (common: a router starts uniform), so a model trained under bf16 autocast would route
// differently from the fp32 model it saves, evaluates and exports.
at::Tensor router_logits(const at::Tensor& x, const at::Tensor& weight);

// logits: [B, T, G, M] -> routing with k experts per group. Softmax before top-k; among equal
// probabilities the lower expert index ranks first (a zero-initialised router picks expert 0).
Routing route_tokens(const at::Tensor& logits, int64_t k, TopK top_k = kernels::top_k_reference);

// w[i,g,r] = p_sel[i,g,r] / max(sum over all groups and ranks of p_sel[i,.,.], eps)
// selected_probs: [B, T, G, k] -> [B, T, G, k]
at::Tensor renormalised_weights(const at::Tensor& selected_probs, double eps);

// L_aux = mean_g [ M * sum_m f[g,m] * P[g,m] ] over all B*T tokens; 1.0 for uniform top-1 routing.
// f: fraction of tokens whose selection includes (g,m) (no gradient); P: mean probability.
at::Tensor load_balancing_loss(const Routing& r);

// Sets r.weights and r.aux_loss from r's probabilities and selection (the plain composition; the CPU
// attention path computes all of routing in one pass instead, kernels/fused_routing.h).
Routing weigh_routing(Routing r, double eps);

}  // namespace gqe
