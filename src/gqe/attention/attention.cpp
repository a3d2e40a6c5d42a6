#include "gqe/attention/attention.h"

#include <torch/nn/init.h>

#include "gqe/attention/rope.h"
#include "gqe/attention/sdpa_reference.h"
#include "gqe/kernels/flash_attention.h"
#include "gqe/kernels/rope.h"
#include "gqe/kernels/routed_projection.h"

namespace gqe {
namespace {

torch::nn::Linear linear(int64_t in, int64_t out) {
  auto l = torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  torch::NoGradGuard g;
  torch::nn::init::xavier_uniform_(l->weight);  // the authors' init for Q/K/V/O and the shared query
  return l;
}

// The fast path (flash kernel, sparse routing, one-pass RoPE) unless the config asks for the reference; it
// is fp32-only, so other dtypes (e.g. double-precision gradient checks) take the reference path.
bool use_fast(const AttentionConfig& a, const at::Tensor& x) {
  return a.implementation == "fast" && x.scalar_type() == at::kFloat;
}

// RoPE on [B,T,H,d_h] at positions start..: the one-pass kernel or its libtorch reference twin.
at::Tensor rotate(const at::Tensor& x, bool fast, int64_t start, double theta) {
  return fast ? kernels::rope(x, start, theta) : apply_rope(x, start, theta);
}

// Projects x [B,T,d] to K and V [B,T,G,d_h], applies RoPE to K and appends to the cache.
std::pair<at::Tensor, at::Tensor> keys_values(const at::Tensor& x, torch::nn::Linear& kp, torch::nn::Linear& vp,
                                              const AttentionConfig& a, bool rope, double theta, int64_t start,
                                              LayerKVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  at::Tensor k = kp->forward(x).view({B, T, a.num_kv_heads, a.head_dim});
  at::Tensor v = vp->forward(x).view({B, T, a.num_kv_heads, a.head_dim});
  if (rope) k = rotate(k, use_fast(a, x), start, theta);
  if (cache) return cache->append(k, v);
  return {k, v};
}

}  // namespace

GQAAttention::GQAAttention(const ModelConfig& cfg)
    : a_(cfg.attention), rope_theta_(cfg.rope_theta), rope_(cfg.position_embedding == "rope") {
  const int64_t d = cfg.hidden_size, dh = a_.head_dim;
  q_proj = register_module("q_proj", linear(d, a_.num_heads * dh));
  k_proj = register_module("k_proj", linear(d, a_.num_kv_heads * dh));
  v_proj = register_module("v_proj", linear(d, a_.num_kv_heads * dh));
  o_proj = register_module("o_proj", linear(a_.num_heads * dh, d));
}

AttentionResult GQAAttention::forward(const at::Tensor& x, LayerKVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), start = cache ? cache->length() : 0;
  const int64_t M = a_.experts_per_group();
  auto [k, v] = keys_values(x, k_proj, v_proj, a_, rope_, rope_theta_, start, cache);
  const bool fast = use_fast(a_, x);
  at::Tensor q = q_proj->forward(x).view({B, T, a_.num_heads, a_.head_dim});
  if (rope_) q = rotate(q, fast, start, rope_theta_);
  at::Tensor o;
  if (fast) {
    o = kernels::flash_attention(q, k, v, start);  // GQA-native: head h uses KV head h / M, no expansion
  } else {
    // Head h uses KV head h / M: repeat each KV head M times along the head axis.
    o = causal_attention_reference(q, k.repeat_interleave(M, 2), v.repeat_interleave(M, 2), start);
  }
  return {o_proj->forward(o.reshape({B, T, a_.num_heads * a_.head_dim})), at::zeros({}, x.options())};
}

GQEAttention::GQEAttention(const ModelConfig& cfg)
    : a_(cfg.attention), rope_theta_(cfg.rope_theta), rope_(cfg.position_embedding == "rope") {
  const int64_t d = cfg.hidden_size, dh = a_.head_dim;
  q_proj = register_module("q_proj", linear(d, a_.num_heads * dh));
  k_proj = register_module("k_proj", linear(d, a_.num_kv_heads * dh));
  v_proj = register_module("v_proj", linear(d, a_.num_kv_heads * dh));
  router = register_module("router", torch::nn::Linear(torch::nn::LinearOptions(d, a_.num_heads).bias(false)));
  {
    torch::NoGradGuard g;
    router->weight.zero_();  // routing starts uniform
  }
  if (a_.has_shared_head()) shared_q_proj = register_module("shared_q_proj", linear(d, dh));
  o_proj = register_module("o_proj", linear(a_.num_slots() * dh, d));
}

AttentionResult GQEAttention::forward(const at::Tensor& x, LayerKVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), start = cache ? cache->length() : 0;
  const int64_t G = a_.num_kv_heads, M = a_.experts_per_group(), k = a_.top_k, dh = a_.head_dim;
  auto [keys, values] = keys_values(x, k_proj, v_proj, a_, rope_, rope_theta_, start, cache);

  // 1. Router: softmax within each group, then top-k.
  Routing r = route_tokens(router->forward(x).view({B, T, G, M}), k);
  if (forced_selection.defined()) {
    TORCH_CHECK(forced_selection.sizes() == r.selected.sizes(), "forced_selection must be [B, T, G, k]");
    r.selected = forced_selection;
    r.selected_probs = r.probs.gather(-1, r.selected);
  }
  last_router_probs = r.probs.detach();
  last_selected = r.selected;

  // 2. Expert outputs o[i,g,m]: every expert of group g attends against K_g, V_g. The reference computes
  //    all N experts and then picks the selected ones; the fast path computes only the selected.
  const bool fast = use_fast(a_, x);
  at::Tensor o_sel;  // [B,T,G,k,d_h]: token i's r-th choice in group g
  if (fast) {
    // Slot head g*k + r holds token i's r-th choice of group g: for attention only the query values and
    // positions matter, so this is GQA with k query heads per KV head (fast-gqe-design.md).
    at::Tensor q = kernels::routed_query_projection(x, q_proj->weight, r.selected, M, dh);  // [B,T,G*k,d_h]
    if (rope_) q = rotate(q, fast, start, rope_theta_);
    o_sel = kernels::flash_attention(q, keys, values, start).view({B, T, G, k, dh});
  } else {
    at::Tensor q = q_proj->forward(x).view({B, T, G * M, dh});
    if (rope_) q = apply_rope(q, start, rope_theta_);
    at::Tensor o_all =
        causal_attention_reference(q, keys.repeat_interleave(M, 2), values.repeat_interleave(M, 2), start)
            .view({B, T, G, M, dh});
    o_sel = o_all.gather(3, r.selected.unsqueeze(-1).expand({B, T, G, k, dh}));
  }

  at::Tensor slots;
  if (a_.variant == "weighted_concat") {
    // Each slot scaled by its raw (not renormalised) probability.
    slots = (r.selected_probs.unsqueeze(-1) * o_sel).reshape({B, T, G * k * dh});
  } else {
    // Hard slots: unscaled, ordered by group, then by rank within the top-k.
    at::Tensor hard = o_sel.reshape({B, T, G * k * dh});
    if (a_.variant == "hard_concat") {
      slots = hard;
    } else {
      // 3. Renormalised weighted-sum slot: the router's gradient path from the LM loss.
      at::Tensor w = renormalised_weights(r.selected_probs, a_.router_denominator_eps);  // [B,T,G,k]
      at::Tensor obar = (w.unsqueeze(-1) * o_sel).sum({2, 3});                           // [B,T,d_h]
      // 4. Shared head: own query against the mean of the G KV heads (keys averaged after RoPE).
      at::Tensor qs = fast ? kernels::narrow_projection(x, shared_q_proj->weight)
                           : shared_q_proj->forward(x).view({B, T, 1, dh});
      if (rope_) qs = rotate(qs, fast, start, rope_theta_);
      at::Tensor s;
      if (fast) {
        // Decoding: the cache keeps the running mean, so a step does not re-read all of K/V to average it.
        auto [k_mean, v_mean] = cache ? cache->mean_kv() : std::make_pair(keys.mean(2, true), values.mean(2, true));
        s = kernels::flash_attention(qs, k_mean, v_mean, start).view({B, T, dh});
      } else {
        s = causal_attention_reference(qs, keys.mean(2, true), values.mean(2, true), start).view({B, T, dh});
      }
      slots = at::cat({hard, obar, s}, -1);
    }
  }
  // 5. W_O over the slots.
  return {o_proj->forward(slots), load_balancing_loss(r)};
}

std::shared_ptr<AttentionBlock> make_attention(const ModelConfig& cfg) {
  if (cfg.attention.is_gqe()) return std::make_shared<GQEAttention>(cfg);
  return std::make_shared<GQAAttention>(cfg);
}

}  // namespace gqe
