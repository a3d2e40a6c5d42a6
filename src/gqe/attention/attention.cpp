#include "gqe/attention/attention.h"

#include <torch/nn/init.h>

#include "gqe/attention/attention_path.h"

namespace gqe {
namespace {

Linear linear(int64_t in, int64_t out, WeightInit init) {
  Linear l(in, out, init);
  if (init == WeightInit::none) return l;
  torch::NoGradGuard g;
  torch::nn::init::xavier_uniform_(l->weight);  // the authors' init for Q/K/V/O and the shared query
  return l;
}

// Where the tokens of a forward call sit: positions start .. for every sequence, or, against a ragged cache
// (sequences of unequal lengths), sequence b's tokens from its own length on.
struct Positions {
  int64_t start = 0;
  std::vector<int64_t> per_sequence;  // ragged only: each sequence's length before this call
  at::Tensor lengths;                 // ragged decode step only: [B] int64, each sequence's length once its token is in
};

Positions positions_in(const LayerKVCache* cache, const at::Tensor& x) {
  Positions p;
  if (!cache) return p;
  p.start = cache->length();
  if (cache->ragged()) {
    p.per_sequence = cache->lengths();
    if (x.size(1) == 1) p.lengths = cache->lengths_tensor() + 1;
  }
  return p;
}

// Several tokens per sequence against a ragged cache: each sequence attends alone, its queries at its own
// positions against its own keys (a causal call with q_start = its length), so no mask is needed.
// q [B, T, Hq, d_h], q_shared [B, T, 1, d_h] or undefined, keys/values [B, Tk, G, d_h] (the whole cache)
// -> (slot outputs [B, T, Hq, d_h], shared output [B, T, 1, d_h] or undefined).
std::pair<at::Tensor, at::Tensor> attend_ragged_rows(const AttentionPath& path, const at::Tensor& q,
                                                     const at::Tensor& q_shared, const at::Tensor& keys,
                                                     const at::Tensor& values, const Positions& pos) {
  const int64_t T = q.size(1);
  std::vector<at::Tensor> slots, shared;
  for (size_t b = 0; b < pos.per_sequence.size(); ++b) {
    const int64_t row = int64_t(b), start = pos.per_sequence[b];
    const at::Tensor k = keys.narrow(0, row, 1).narrow(1, 0, start + T);
    const at::Tensor v = values.narrow(0, row, 1).narrow(1, 0, start + T);
    auto [o, s] = path.attend_slots_and_shared(q.narrow(0, row, 1),
                                               q_shared.defined() ? q_shared.narrow(0, row, 1) : at::Tensor(), k, v,
                                               start, nullptr);
    slots.push_back(o);
    if (s.defined()) shared.push_back(s);
  }
  return {at::cat(slots, 0), shared.empty() ? at::Tensor() : at::cat(shared, 0)};
}

// RoPE of x [B, T, H, d_h] at positions p.
at::Tensor rope_at(const AttentionPath& path, const at::Tensor& x, const Positions& p, double theta) {
  if (p.per_sequence.empty()) return path.rope(x, p.start, theta);
  return path.rope_ragged(x, p.per_sequence, theta);
}

// Projects x [B,T,d] to K and V [B,T,G,d_h], applies RoPE to K and appends to the cache.
std::pair<at::Tensor, at::Tensor> keys_values(const at::Tensor& x, Linear& kp, Linear& vp,
                                              const AttentionConfig& a, const AttentionPath& path, bool rope,
                                              double theta, const Positions& pos, LayerKVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  at::Tensor k = kp->forward(x).view({B, T, a.num_kv_heads, a.head_dim});
  at::Tensor v = vp->forward(x).view({B, T, a.num_kv_heads, a.head_dim});
  if (rope) k = rope_at(path, k, pos, theta);
  if (cache) return cache->append(k, v);
  return {k, v};
}

}  // namespace

GQAAttention::GQAAttention(const ModelConfig& cfg, WeightInit init)
    : a_(cfg.attention), rope_theta_(cfg.rope_theta), rope_(cfg.position_embedding == PositionEmbedding::rope) {
  const int64_t d = cfg.hidden_size, dh = a_.head_dim;
  q_proj = register_module("q_proj", linear(d, a_.num_heads * dh, init));
  k_proj = register_module("k_proj", linear(d, a_.num_kv_heads * dh, init));
  v_proj = register_module("v_proj", linear(d, a_.num_kv_heads * dh, init));
  o_proj = register_module("o_proj", linear(a_.num_heads * dh, d, init));
}

AttentionResult GQAAttention::forward(const at::Tensor& x, LayerKVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  const Positions pos = positions_in(cache, x);
  const AttentionPath& path = attention_path_for(a_, x);
  auto [k, v] = keys_values(x, k_proj, v_proj, a_, path, rope_, rope_theta_, pos, cache);
  at::Tensor q = q_proj->forward(x).view({B, T, a_.num_heads, a_.head_dim});
  if (rope_) q = rope_at(path, q, pos, rope_theta_);
  // Head h uses KV head h / M.
  at::Tensor o = pos.lengths.defined()        ? path.decode_ragged(q, at::Tensor(), k, v, pos.lengths, cache).first
                 : !pos.per_sequence.empty() ? attend_ragged_rows(path, q, at::Tensor(), k, v, pos).first
                                             : path.attend(q, k, v, pos.start);
  return {o_proj->forward(o.reshape({B, T, a_.num_heads * a_.head_dim})), at::zeros({}, x.options())};
}

GQEAttention::GQEAttention(const ModelConfig& cfg, WeightInit init)
    : a_(cfg.attention), rope_theta_(cfg.rope_theta), rope_(cfg.position_embedding == PositionEmbedding::rope) {
  const int64_t d = cfg.hidden_size, dh = a_.head_dim;
  q_proj = register_module("q_proj", linear(d, a_.num_heads * dh, init));
  k_proj = register_module("k_proj", linear(d, a_.num_kv_heads * dh, init));
  v_proj = register_module("v_proj", linear(d, a_.num_kv_heads * dh, init));
  router = register_module("router", Linear(d, a_.num_heads, init));
  if (init == WeightInit::random) {
    torch::NoGradGuard g;
    router->weight.zero_();  // routing starts uniform
  }
  if (a_.has_shared_head()) shared_q_proj = register_module("shared_q_proj", linear(d, dh, init));
  o_proj = register_module("o_proj", linear(a_.num_slots() * dh, d, init));
}

AttentionResult GQEAttention::forward(const at::Tensor& x, LayerKVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t G = a_.num_kv_heads, M = a_.experts_per_group(), k = a_.top_k, dh = a_.head_dim;
  const Positions pos = positions_in(cache, x);
  const AttentionPath& path = attention_path_for(a_, x);
  auto [keys, values] = keys_values(x, k_proj, v_proj, a_, path, rope_, rope_theta_, pos, cache);

  // 1. Route: softmax within each group, top-k, the renormalised weights and the load-balancing loss.
  const at::Tensor logits = router_logits(x, router->weight).view({B, T, G, M});
  Routing r;
  if (forced_selection.defined()) {
    r = route_tokens(logits, k, path.top_k());
    TORCH_CHECK(forced_selection.sizes() == r.selected.sizes(), "forced_selection must be [B, T, G, k]");
    r.selected = forced_selection;
    r.selected_probs = r.probs.gather(-1, r.selected);
    r = weigh_routing(r, a_.router_denominator_eps);
  } else {
    r = path.route(logits, k, a_.router_denominator_eps);
  }
  last_router_probs = r.probs.detach();
  last_selected = r.selected;

  // 2. Project and attend: only the selected experts. Every expert of group g attends against K_g, V_g,
  //    so for attention only a query's values and position matter: slot head g*k + r holds token i's r-th
  //    choice of group g, and this is GQA with k query heads per KV head (docs/method.md, "Making it fast").
  //    The shared head (variant gqe) attends in the same call: its own query against the mean of the G KV
  //    heads (keys averaged after RoPE), which lets a decode step serve both from the same K/V tiles.
  at::Tensor q = path.routed_queries(x, q_proj->weight, r.selected, M, dh);  // [B,T,G*k,d_h]
  if (rope_) q = rope_at(path, q, pos, rope_theta_);
  at::Tensor qs;
  if (a_.has_shared_head()) {
    qs = path.shared_query(x, shared_q_proj->weight);  // [B,T,1,d_h]
    if (rope_) qs = rope_at(path, qs, pos, rope_theta_);
  }
  auto [o_att, s_att] = pos.lengths.defined()        ? path.decode_ragged(q, qs, keys, values, pos.lengths, cache)
                        : !pos.per_sequence.empty() ? attend_ragged_rows(path, q, qs, keys, values, pos)
                                                    : path.attend_slots_and_shared(q, qs, keys, values, pos.start, cache);
  at::Tensor o_sel = o_att.view({B, T, G, k, dh});

  // 3. Combine into the slots W_O reads.
  at::Tensor slots;
  if (a_.variant == GqeVariant::weighted_concat) {
    // Each slot scaled by its raw (not renormalised) probability.
    slots = (r.selected_probs.unsqueeze(-1) * o_sel).reshape({B, T, G * k * dh});
  } else {
    // Hard slots: unscaled, ordered by group, then by rank within the top-k.
    if (a_.variant == GqeVariant::hard_concat) {
      slots = o_sel.reshape({B, T, G * k * dh});
    } else {
      // The hard slots, the renormalised weighted-sum slot (the router's gradient path from the LM loss) and
      // the shared head's output, in one buffer.
      slots = path.gqe_slots(o_att, r.weights, s_att);
    }
  }
  // 4. W_O over the slots.
  return {o_proj->forward(slots), r.aux_loss};
}

std::shared_ptr<AttentionBlock> make_attention(const ModelConfig& cfg, WeightInit init) {
  if (cfg.attention.is_gqe()) return std::make_shared<GQEAttention>(cfg, init);
  return std::make_shared<GQAAttention>(cfg, init);
}

}  // namespace gqe
