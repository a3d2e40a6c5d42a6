#include "gqe/core/config.h"

#include <nlohmann/json.hpp>
#include <limits>
#include <set>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"
#include "gqe/core/model_stats.h"

namespace gqe {
using nlohmann::json;

int64_t AttentionConfig::num_slots() const {
  if (!is_gqe()) return num_heads;
  int64_t hard = top_k * num_kv_heads;
  return variant == GqeVariant::gqe ? hard + 2 : hard;
}

int64_t AttentionConfig::active_query_heads() const {
  if (!is_gqe()) return num_heads;
  int64_t routed = top_k * num_kv_heads;
  return variant == GqeVariant::gqe ? routed + 1 : routed;
}

namespace {

[[noreturn]] void fail(const std::string& source, const std::string& field, const std::string& what) {
  throw ConfigError(source + ": field '" + field + "': " + what);
}

void check_known_keys(const json& j, const std::set<std::string>& known, const std::string& source,
                      const std::string& prefix) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(source, prefix + it.key(), "unknown key (expected one of: " + list + ")");
    }
  }
}

template <typename T>
void read(const json& j, const char* key, T& out, const std::string& source, const std::string& prefix) {
  if (!j.contains(key)) return;
  const json& v = j.at(key);
  const std::string field = prefix + key;
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) fail(source, field, "expected true or false, got " + truncate_for_message(v.dump()));
    out = v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) fail(source, field, "expected an integer, got " + truncate_for_message(v.dump()));
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<T>::max()))
      fail(source, field, "the integer " + v.dump() + " is out of range (at most " +
                              std::to_string(std::numeric_limits<T>::max()) + ")");
    out = v.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) fail(source, field, "expected a number, got " + truncate_for_message(v.dump()));
    out = v.get<T>();
  } else {
    if (!v.is_string()) fail(source, field, "expected a string, got " + truncate_for_message(v.dump()));
    out = v.get<std::string>();
  }
}

// An enumerated field: its JSON string, which must be one of EnumNames<E>.
template <typename E>
void read_enum(const json& j, const char* key, E& out, const std::string& source, const std::string& prefix) {
  if (!j.contains(key)) return;
  std::string text;
  read(j, key, text, source, prefix);
  const std::optional<E> v = enum_from_string<E>(text);
  if (!v) fail(source, prefix + key, unknown_enum_message<E>(text));
  out = *v;
}

}  // namespace

void validate_model_config(const ModelConfig& c, const std::string& source) {
  auto positive = [&](const char* field, int64_t v) {
    if (v <= 0) fail(source, field, "must be a positive integer, got " + std::to_string(v));
  };
  positive("vocab_size", c.vocab_size);
  positive("hidden_size", c.hidden_size);
  positive("num_hidden_layers", c.num_hidden_layers);
  positive("intermediate_size", c.intermediate_size);
  positive("max_position_embeddings", c.max_position_embeddings);
  if (!(c.rms_norm_eps > 0)) fail(source, "rms_norm_eps", "must be > 0");
  if (!(c.rope_theta > 0)) fail(source, "rope_theta", "must be > 0");
  if (!(c.initializer_range > 0)) fail(source, "initializer_range", "must be > 0");

  const AttentionConfig& a = c.attention;
  if (a.num_heads <= 0) fail(source, "attention.num_attention_heads", "must be a positive integer");
  if (a.num_kv_heads <= 0) fail(source, "attention.num_key_value_heads", "must be a positive integer");
  if (a.head_dim <= 0) fail(source, "attention.head_dim", "must be a positive integer");
  if (a.num_heads % a.num_kv_heads != 0)
    fail(source, "attention.num_key_value_heads",
         "num_attention_heads (" + std::to_string(a.num_heads) + ") must be divisible by num_key_value_heads (" +
             std::to_string(a.num_kv_heads) + ")");
  if (c.position_embedding == PositionEmbedding::rope && a.head_dim % 2 != 0)
    fail(source, "attention.head_dim", "must be even with RoPE, got " + std::to_string(a.head_dim));
  if (a.is_gqe()) {
    const int64_t M = a.experts_per_group();
    if (a.top_k < 1 || a.top_k > M)
      fail(source, "attention.top_k",
           "must be in 1.." + std::to_string(M) + " (experts per group), got " + std::to_string(a.top_k));
    if (!(a.aux_loss_weight >= 0)) fail(source, "attention.aux_loss_weight", "must be >= 0");
    if (!(a.router_denominator_eps > 0)) fail(source, "attention.router_denominator_eps", "must be > 0");
  }
  count_parameters(c, source);  // sizes whose products overflow int64 are refused here, naming them
}

ModelConfig parse_model_config(const std::string& text, const std::string& source) {
  json j;
  try {
    j = parse_json(text, source);
  } catch (const JsonError& e) {
    throw ConfigError(e.what());
  }
  if (!j.is_object()) throw ConfigError(source + ": expected a JSON object at the top level");

  // model_type / architectures are accepted for Hugging Face compatibility and otherwise ignored.
  check_known_keys(j,
                   {"model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers",
                    "intermediate_size", "max_position_embeddings", "rms_norm_eps", "rope_theta",
                    "tie_word_embeddings", "norm_type", "mlp_type", "position_embedding", "initializer_range",
                    "attention"},
                   source, "");
  ModelConfig c;
  read(j, "vocab_size", c.vocab_size, source, "");
  read(j, "hidden_size", c.hidden_size, source, "");
  read(j, "num_hidden_layers", c.num_hidden_layers, source, "");
  read(j, "intermediate_size", c.intermediate_size, source, "");
  read(j, "max_position_embeddings", c.max_position_embeddings, source, "");
  read(j, "rms_norm_eps", c.rms_norm_eps, source, "");
  read(j, "rope_theta", c.rope_theta, source, "");
  read(j, "tie_word_embeddings", c.tie_word_embeddings, source, "");
  read_enum(j, "norm_type", c.norm_type, source, "");
  read_enum(j, "mlp_type", c.mlp_type, source, "");
  read_enum(j, "position_embedding", c.position_embedding, source, "");
  read(j, "initializer_range", c.initializer_range, source, "");

  if (!j.contains("attention")) throw ConfigError(source + ": field 'attention': missing (expected an object)");
  const json& a = j.at("attention");
  if (!a.is_object()) fail(source, "attention", "expected an object, got " + truncate_for_message(a.dump()));
  check_known_keys(a,
                   {"kind", "num_attention_heads", "num_key_value_heads", "head_dim", "top_k", "variant",
                    "aux_loss_weight", "router_denominator_eps", "implementation"},
                   source, "attention.");
  AttentionConfig& at = c.attention;
  read_enum(a, "kind", at.kind, source, "attention.");
  if (!a.contains("kind")) fail(source, "attention.kind", "missing (expected " + enum_choices<AttentionKind>() + ")");
  read(a, "num_attention_heads", at.num_heads, source, "attention.");
  read(a, "num_key_value_heads", at.num_kv_heads, source, "attention.");
  if (a.contains("head_dim")) {
    read(a, "head_dim", at.head_dim, source, "attention.");
  } else {  // Hugging Face convention: head_dim = hidden_size / num_attention_heads
    if (at.num_heads <= 0) fail(source, "attention.num_attention_heads", "must be a positive integer");
    if (c.hidden_size % at.num_heads != 0)
      fail(source, "attention.head_dim",
           "missing, and hidden_size (" + std::to_string(c.hidden_size) + ") is not divisible by num_attention_heads (" +
               std::to_string(at.num_heads) + "); give head_dim explicitly");
    at.head_dim = c.hidden_size / at.num_heads;
  }
  if (at.kind == AttentionKind::gqa) {
    for (const char* k : {"top_k", "variant", "aux_loss_weight", "router_denominator_eps"})
      if (a.contains(k)) fail(source, std::string("attention.") + k, "only valid with kind \"gqe\"");
  }
  read(a, "top_k", at.top_k, source, "attention.");
  read_enum(a, "variant", at.variant, source, "attention.");
  read(a, "aux_loss_weight", at.aux_loss_weight, source, "attention.");
  read(a, "router_denominator_eps", at.router_denominator_eps, source, "attention.");
  read_enum(a, "implementation", at.implementation, source, "attention.");
  validate_model_config(c, source);
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  if (!fs::is_file(path)) throw ConfigError(path + ": cannot open model config");
  return parse_model_config(fs::read_file(path, fs::kSmallFileLimit), path);
}

std::string model_config_to_json(const ModelConfig& c, int indent) {
  json a = {{"kind", to_string(c.attention.kind)},
            {"num_attention_heads", c.attention.num_heads},
            {"num_key_value_heads", c.attention.num_kv_heads},
            {"head_dim", c.attention.head_dim}};
  if (c.attention.is_gqe()) {
    a["top_k"] = c.attention.top_k;
    a["variant"] = to_string(c.attention.variant);
    a["aux_loss_weight"] = c.attention.aux_loss_weight;
    a["router_denominator_eps"] = c.attention.router_denominator_eps;
  }
  if (c.attention.implementation != AttentionImplementation::fast)
    a["implementation"] = to_string(c.attention.implementation);
  json j = {{"model_type", "gqe_lm"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"intermediate_size", c.intermediate_size},
            {"max_position_embeddings", c.max_position_embeddings},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"norm_type", to_string(c.norm_type)},
            {"mlp_type", to_string(c.mlp_type)},
            {"position_embedding", to_string(c.position_embedding)},
            {"initializer_range", c.initializer_range},
            {"attention", a}};
  return j.dump(indent);
}

namespace {

void first_difference(const json& a, const json& b, const std::string& prefix, ConfigDifference& out) {
  for (auto it = a.begin(); it != a.end() && out.field.empty(); ++it) {
    const std::string field = prefix + it.key();
    if (field == "initializer_range" || field == "attention.aux_loss_weight" || field == "attention.implementation")
      continue;
    const json other = b.contains(it.key()) ? b.at(it.key()) : json();
    if (it.value().is_object() && other.is_object()) {
      first_difference(it.value(), other, field + ".", out);
    } else if (it.value() != other) {
      out = {field, it.value().dump(), other.is_null() ? "(absent)" : other.dump()};
    }
  }
  for (auto it = b.begin(); it != b.end() && out.field.empty(); ++it)  // fields only b has
    if (!a.contains(it.key()) && prefix + it.key() != "attention.implementation")
      out = {prefix + it.key(), "(absent)", it.value().dump()};
}

}  // namespace

ConfigDifference first_config_difference(const ModelConfig& a, const ModelConfig& b) {
  ConfigDifference d;
  first_difference(json::parse(model_config_to_json(a, -1)), json::parse(model_config_to_json(b, -1)), "", d);
  return d;
}

}  // namespace gqe
