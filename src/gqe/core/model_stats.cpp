#include "gqe/core/model_stats.h"

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <sstream>

#include "gqe/core/error.h"
#include "gqe/core/format.h"

namespace gqe {

namespace {

struct Factor {
  const char* name;  // the config field, or a description of a derived size
  int64_t value;
};

// The product of `factors` in int64; a product that does not fit is a config error naming the factors.
int64_t checked_product(const std::string& source, const char* part, std::initializer_list<Factor> factors) {
  __int128 p = 1;
  const __int128 max = std::numeric_limits<int64_t>::max();
  for (const Factor& f : factors) {
    p *= f.value;
    if (p > max || p < -max) {
      std::string what;
      for (const Factor& g : factors) what += (what.empty() ? "" : " x ") + std::string(g.name) + " (" + std::to_string(g.value) + ")";
      throw ConfigError(source + ": sizes too large: the " + part + " parameter count " + what +
                        " overflows int64");
    }
  }
  return int64_t(p);
}

// A count computed in double (FLOPs), written out whole. std::llround is undefined beyond int64 and gave
// -9223372036854775808 at a context of 1e18 tokens; past 1e18 the trailing digits would be the double's
// rounding, so the number is written in scientific notation instead.
std::string whole_number(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, std::fabs(x) < 1e18 ? "%.0f" : "%.6e", x);
  return buf;
}

}  // namespace

ParamCounts count_parameters(const ModelConfig& c, const std::string& source) {
  const AttentionConfig& a = c.attention;
  const int64_t d = c.hidden_size, dh = a.head_dim, N = a.num_heads, G = a.num_kv_heads;
  const int64_t L = c.num_hidden_layers;
  const Factor fd{"hidden_size", d}, fdh{"attention.head_dim", dh}, fL{"num_hidden_layers", L},
      fV{"vocab_size", c.vocab_size};
  ParamCounts p;
  p.embedding = checked_product(source, "embedding", {fV, fd});
  // The per-layer parts are bounded by (slots + N + 1) * dh * d, which is checked first.
  checked_product(source, "attention", {fL, {"query heads + slots + 4", a.num_heads + a.num_slots() + 4}, fdh, fd});
  p.attn_q = L * (N * dh * d + (a.has_shared_head() ? dh * d : 0));
  p.attn_kv = L * 2 * G * dh * d;
  p.attn_o = L * a.num_slots() * dh * d;
  p.attn_router = a.is_gqe() ? L * N * d : 0;
  p.mlp = checked_product(source, "mlp", {fL, {"mlp matrices", c.mlp_type == MlpType::swiglu ? 3 : 2}, fd,
                                          {"intermediate_size", c.intermediate_size}});
  // (The attention check above bounds L and d far below 2^62, so these factors cannot overflow.)
  const int64_t norm = c.norm_type == NormType::layernorm ? 2 * d : d;  // LayerNorm has a bias
  p.norms = checked_product(source, "norm", {{"2 x num_hidden_layers + 1", 2 * L + 1}, {"norm width", norm}});
  p.lm_head = c.tie_word_embeddings ? 0 : p.embedding;
  __int128 total = 0;
  for (int64_t part : {p.embedding, p.attn_q, p.attn_kv, p.attn_o, p.attn_router, p.mlp, p.norms, p.lm_head})
    total += part;
  if (total > std::numeric_limits<int64_t>::max())
    throw ConfigError(source + ": sizes too large: the total parameter count overflows int64");
  return p;
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

ModelFlops model_flops_per_token(const ModelConfig& c, int64_t L) {
  const double d = c.hidden_size, layers = c.num_hidden_layers;
  ModelFlops f;
  f.attention = attention_flops_per_token(c, L - L / 2).total() * layers;  // mean context (L + 1) / 2
  f.mlp = 2.0 * (c.mlp_type == MlpType::swiglu ? 3 : 2) * d * double(c.intermediate_size) * layers;
  f.lm_head = 2.0 * d * double(c.vocab_size);
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
  const ModelFlops m = model_flops_per_token(c, L);
  o << "model forward FLOPs per token, mean over a causal prefill of " << L << ": " << human_number(m.total()) << " ("
    << whole_number(m.total()) << "; attention " << human_number(m.attention) << ", mlp " << human_number(m.mlp)
    << ", lm head " << human_number(m.lm_head) << "); training about 3x\n";
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
