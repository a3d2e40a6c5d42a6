#include "gqe/core/model_stats.h"

#include <array>
#include <cstdio>
#include <sstream>

#include "gqe/core/format.h"

namespace gqe {

namespace {

// The parameter counts as terms in the order of ParamCounts' fields, in any arithmetic type: int64_t for
// the exact numbers, long double to learn whether they fit in int64_t at all.
template <class T>
std::array<T, 8> parameter_terms(const ModelConfig& c) {
  const AttentionConfig& a = c.attention;
  const T d = T(c.hidden_size), dh = T(a.head_dim), N = T(a.num_heads), G = T(a.num_kv_heads);
  const T L = T(c.num_hidden_layers), V = T(c.vocab_size);
  const T norm = c.norm_type == NormType::layernorm ? 2 * d : d;  // LayerNorm has a bias
  return {V * d,
          L * (N * dh * d + (a.has_shared_head() ? dh * d : T(0))),
          L * 2 * G * dh * d,
          L * T(a.num_slots()) * dh * d,
          a.is_gqe() ? L * N * d : T(0),
          L * T(c.mlp_type == MlpType::swiglu ? 3 : 2) * d * T(c.intermediate_size),
          (2 * L + 1) * norm,
          c.tie_word_embeddings ? T(0) : V * d};
}

}  // namespace

ParamCounts count_parameters(const ModelConfig& c) {
  const auto t = parameter_terms<int64_t>(c);
  ParamCounts p;
  p.embedding = t[0];
  p.attn_q = t[1];
  p.attn_kv = t[2];
  p.attn_o = t[3];
  p.attn_router = t[4];
  p.mlp = t[5];
  p.norms = t[6];
  p.lm_head = t[7];
  return p;
}

long double parameter_count_estimate(const ModelConfig& c) {
  long double total = 0;
  for (long double t : parameter_terms<long double>(c)) total += t;
  return total;
}

AttentionFlops attention_flops_per_token(const ModelConfig& c, int64_t L) {
  const AttentionConfig& a = c.attention;
  const double d = c.hidden_size, dh = a.head_dim;
  AttentionFlops f;
  f.q_proj = 2.0 * a.active_query_heads() * dh * d;
  f.kv_proj = 2.0 * 2 * a.num_kv_heads * dh * d;
  f.router = a.is_gqe() ? 2.0 * a.num_heads * d : 0.0;
  f.o_proj = 2.0 * a.num_slots() * dh * d;
  f.core = 2.0 * 2 * a.active_query_heads() * dh * double(L);
  return f;
}

std::string describe_model(const ModelConfig& c, int64_t L) {
  const AttentionConfig& a = c.attention;
  const ParamCounts p = count_parameters(c);
  std::ostringstream o;
  o << "model: " << c.num_hidden_layers << " layers, d=" << c.hidden_size << ", mlp=" << to_string(c.mlp_type) << "("
    << c.intermediate_size << "), norm=" << to_string(c.norm_type) << ", position=" << to_string(c.position_embedding)
    << ", vocab=" << c.vocab_size << (c.tie_word_embeddings ? ", tied embeddings" : "") << "\n";
  if (a.is_gqe()) {
    o << "attention: GQE variant=" << to_string(a.variant) << "  N=" << a.num_heads << " experts, G=" << a.num_kv_heads
      << " KV heads, M=" << a.experts_per_group() << " experts/group, k=" << a.top_k << ", d_h=" << a.head_dim
      << ", aux_loss_weight=" << a.aux_loss_weight << "\n";
  } else {
    o << "attention: GQA  N=" << a.num_heads << " query heads, G=" << a.num_kv_heads << " KV heads, d_h=" << a.head_dim
      << (a.num_kv_heads == a.num_heads ? " (MHA)" : a.num_kv_heads == 1 ? " (MQA)" : "") << "\n";
  }
  o << "active query heads per token: " << a.active_query_heads() << " of " << a.num_heads << "\n";
  o << "slots into W_O: " << a.num_slots();
  if (a.is_gqe()) {
    const int64_t hard = a.top_k * a.num_kv_heads;
    o << " (" << hard << " hard";
    if (a.variant == GqeVariant::gqe) o << " + 1 weighted + 1 shared";
    if (a.variant == GqeVariant::weighted_concat) o << ", each scaled by its router probability";
    o << ")";
  }
  o << "  -> W_O is " << a.num_slots() * a.head_dim << " x " << c.hidden_size << "\n";
  o << "parameters: " << human_number(double(p.total())) << " (" << p.total() << ")\n";
  auto row = [&](const char* name, int64_t v) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "  %-22s %14lld  %5.1f%%\n", name, (long long)v, 100.0 * v / double(p.total()));
    o << buf;
  };
  row("embedding", p.embedding);
  row("attention q", p.attn_q);
  row("attention k,v", p.attn_kv);
  row("attention o", p.attn_o);
  if (a.is_gqe()) row("router", p.attn_router);
  row("mlp", p.mlp);
  row("norms", p.norms);
  if (!c.tie_word_embeddings) row("lm_head", p.lm_head);
  const AttentionFlops at = attention_flops_per_token(c, L);
  const AttentionFlops avg = attention_flops_per_token(c, L - L / 2);  // (L + 1) / 2 without overflow
  o << "attention FLOPs per token per layer at context " << L << ": " << human_number(at.total()) << " (core "
    << human_number(at.core) << ", q " << human_number(at.q_proj) << ", kv " << human_number(at.kv_proj) << ", o "
    << human_number(at.o_proj);
  if (a.is_gqe()) o << ", router " << human_number(at.router);
  o << ")\n";
  o << "attention FLOPs per token per layer, mean over a causal prefill of " << L << ": " << human_number(avg.total())
    << "; whole model: " << human_number(avg.total() * double(c.num_hidden_layers)) << "\n";
  if (a.is_gqe()) {
    ModelConfig dense = c;
    dense.attention.kind = AttentionKind::gqa;
    const AttentionFlops g = attention_flops_per_token(dense, L - L / 2);
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "vs GQA with the same N/G: attention core %.2fx fewer FLOPs, attention layer %.2fx fewer\n",
                  g.core / avg.core, g.total() / avg.total());
    o << buf;
  }
  return o.str();
}

}  // namespace gqe
