#include "gqe/core/config.h"

#include <gtest/gtest.h>

#include "gqe/core/error.h"
#include "gqe/core/model_stats.h"

namespace gqe {
namespace {

const char* kValid = R"({
  "vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
  "attention": {"kind": "gqe", "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 64,
                "top_k": 1, "variant": "gqe", "aux_loss_weight": 0.01}
})";

// Replaces `from` by `to` in the valid config, parses it and returns the error message ("" = accepted).
std::string error_of(const std::string& from, const std::string& to) {
  std::string s = kValid;
  auto pos = s.find(from);
  if (pos == std::string::npos) throw std::runtime_error("test bug: pattern not found: " + from);
  s.replace(pos, from.size(), to);
  try {
    parse_model_config(s, "cfg.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, ParsesAndRoundTrips) {
  ModelConfig c = parse_model_config(kValid, "cfg.json");
  EXPECT_EQ(c.attention.num_heads, 16);
  EXPECT_EQ(c.attention.experts_per_group(), 2);
  ModelConfig c2 = parse_model_config(model_config_to_json(c), "roundtrip");
  EXPECT_EQ(model_config_to_json(c), model_config_to_json(c2));
}

TEST(Config, RejectsEachInvalidFieldNamingIt) {
  struct Case { const char* from; const char* to; const char* field; };
  const Case cases[] = {
      {"\"num_key_value_heads\": 8", "\"num_key_value_heads\": 6", "attention.num_key_value_heads"},  // N % G
      {"\"top_k\": 1", "\"top_k\": 0", "attention.top_k"},
      {"\"top_k\": 1", "\"top_k\": 3", "attention.top_k"},                          // k > M = 2
      {"\"head_dim\": 64", "\"head_dim\": 7", "attention.head_dim"},                // odd with RoPE
      {"\"variant\": \"gqe\"", "\"variant\": \"soft\"", "attention.variant"},
      {"\"kind\": \"gqe\"", "\"kind\": \"mla\"", "attention.kind"},
      {"\"hidden_size\": 64", "\"hidden_size\": -64", "hidden_size"},
      {"\"vocab_size\": 256", "\"vocab_size\": 0", "vocab_size"},
      {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": -1", "num_hidden_layers"},
      {"\"intermediate_size\": 128", "\"intermediate_size\": 0", "intermediate_size"},
      {"\"num_attention_heads\": 16", "\"num_attention_heads\": -16", "attention.num_attention_heads"},
      {"\"vocab_size\": 256", "\"vocab_size\": 256, \"colour\": 1", "colour"},         // unknown key
      {"\"top_k\": 1", "\"top_k\": 1, \"experts\": 4", "attention.experts"},           // unknown nested key
      {"\"hidden_size\": 64", "\"hidden_size\": \"wide\"", "hidden_size"},             // wrong type
      {"\"aux_loss_weight\": 0.01", "\"aux_loss_weight\": -1", "attention.aux_loss_weight"},
      {"\"vocab_size\": 256", "\"vocab_size\": 256, \"norm_type\": \"batchnorm\"", "norm_type"},
      {"\"vocab_size\": 256", "\"vocab_size\": 256, \"mlp_type\": \"relu\"", "mlp_type"},
  };
  for (const auto& c : cases) {
    std::string msg = error_of(c.from, c.to);
    EXPECT_NE(msg, "") << "accepted: " << c.to;
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string("'") + c.field + "'"), std::string::npos) << "expected field " << c.field << " in: " << msg;
  }
}

TEST(Config, GqaRejectsGqeOnlyFields) {
  const char* s = R"({"vocab_size": 8, "hidden_size": 16, "num_hidden_layers": 1, "intermediate_size": 8,
    "attention": {"kind": "gqa", "num_attention_heads": 4, "num_key_value_heads": 2, "top_k": 1}})";
  EXPECT_THROW(parse_model_config(s, "x.json"), ConfigError);
}

TEST(Config, MissingFileAndBadJsonAreClear) {
  try {
    load_model_config("/nonexistent/config.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/config.json"), std::string::npos);
  }
  EXPECT_THROW(parse_model_config("{\"vocab_size\": ", "x.json"), ConfigError);
}

TEST(Config, HeadDimDefaultsToHiddenOverHeads) {
  const char* s = R"({"vocab_size": 8, "hidden_size": 64, "num_hidden_layers": 1, "intermediate_size": 8,
    "attention": {"kind": "gqa", "num_attention_heads": 4, "num_key_value_heads": 4}})";
  EXPECT_EQ(parse_model_config(s, "x.json").attention.head_dim, 16);
}

// Slots into W_O and active query heads for the issue's (N, G, k) list and every variant.
TEST(Config, SlotsAndActiveHeads) {
  const int64_t shapes[][3] = {{16, 8, 1}, {16, 8, 2}, {8, 4, 1}, {8, 8, 1}, {4, 1, 2}};
  for (const auto& s : shapes) {
    AttentionConfig a;
    a.kind = AttentionKind::gqe;
    a.num_heads = s[0];
    a.num_kv_heads = s[1];
    a.top_k = s[2];
    const int64_t kG = s[2] * s[1];
    a.variant = GqeVariant::gqe;
    EXPECT_EQ(a.num_slots(), kG + 2);
    EXPECT_EQ(a.active_query_heads(), kG + 1);
    for (GqeVariant v : {GqeVariant::hard_concat, GqeVariant::weighted_concat}) {
      a.variant = v;
      EXPECT_EQ(a.num_slots(), kG);
      EXPECT_EQ(a.active_query_heads(), kG);
    }
  }
  AttentionConfig paper;
  EXPECT_EQ(paper.num_slots(), 10);             // 8 hard + weighted + shared
  EXPECT_EQ(paper.active_query_heads(), 9);     // of 16
}

TEST(ModelStats, DescribeShowsNineOfSixteen) {
  ModelConfig c = parse_model_config(kValid, "cfg.json");
  std::string d = describe_model(c, 4096);
  EXPECT_NE(d.find("active query heads per token: 9 of 16"), std::string::npos) << d;
  EXPECT_NE(d.find("slots into W_O: 10"), std::string::npos) << d;
  // FLOP ratio of the attention core at any length is N / (kG + 1) = 16/9.
  ModelConfig dense = c;
  dense.attention.kind = AttentionKind::gqa;
  EXPECT_NEAR(attention_flops_per_token(dense, 2048).core / attention_flops_per_token(c, 2048).core, 16.0 / 9.0, 1e-12);
}

// The whole-model count is the attention layers at the mean causal context plus 2 FLOPs per MLP and LM head
// weight; a hand count for a small config pins the formula.
TEST(ModelStats, ModelFlopsPerTokenCountsEveryMatmul) {
  ModelConfig c = parse_model_config(kValid, "cfg.json");
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.intermediate_size = 48;
  c.vocab_size = 100;
  c.attention.kind = AttentionKind::gqa;
  c.attention.num_heads = 4;
  c.attention.num_kv_heads = 2;
  c.attention.head_dim = 8;
  const ModelFlops f = model_flops_per_token(c, 9);  // mean context 5
  // per layer: q 2*4*8*32, kv 2*2*2*8*32, o 2*4*8*32, core 2*2*4*8*5
  EXPECT_DOUBLE_EQ(f.attention, 2 * (2048.0 + 2048 + 2048 + 640));
  EXPECT_DOUBLE_EQ(f.mlp, 2 * (2.0 * 3 * 32 * 48));  // SwiGLU: three matrices
  EXPECT_DOUBLE_EQ(f.lm_head, 2.0 * 32 * 100);
  EXPECT_NE(describe_model(c, 9).find("model forward FLOPs per token, mean over a causal prefill of 9"),
            std::string::npos);
}

// Enumerated fields are parsed once; their JSON spelling round-trips.
TEST(Config, EnumFieldsRoundTrip) {
  EXPECT_EQ(enum_from_string<GqeVariant>("hard_concat"), GqeVariant::hard_concat);
  EXPECT_FALSE(enum_from_string<GqeVariant>("soft").has_value());
  EXPECT_STREQ(to_string(AttentionImplementation::reference), "reference");
  EXPECT_EQ(enum_choices<GqeVariant>(), "gqe, hard_concat or weighted_concat");
  ModelConfig c = parse_model_config(kValid, "cfg.json");
  c.norm_type = NormType::layernorm;
  c.attention.variant = GqeVariant::weighted_concat;
  ModelConfig back = parse_model_config(model_config_to_json(c), "round-trip");
  EXPECT_EQ(back.norm_type, NormType::layernorm);
  EXPECT_EQ(back.attention.variant, GqeVariant::weighted_concat);
}

// An unknown spelling names the file, the field and the set, and lists every valid spelling.
TEST(Config, UnknownEnumValueListsTheValidNames) {
  EXPECT_EQ(error_of("\"variant\": \"gqe\"", "\"variant\": \"soft\""),
            "cfg.json: field 'attention.variant': unknown GQE variant 'soft' (expected gqe, hard_concat or weighted_concat)");
  EXPECT_EQ(error_of("\"kind\": \"gqe\"", "\"kind\": \"mla\""),
            "cfg.json: field 'attention.kind': unknown attention kind 'mla' (expected gqa or gqe)");
  EXPECT_EQ(error_of("\"top_k\": 1", "\"top_k\": 1, \"implementation\": \"flash\""),
            "cfg.json: field 'attention.implementation': unknown attention implementation 'flash' (expected fast or "
            "reference)");
  EXPECT_EQ(error_of("\"vocab_size\": 256", "\"vocab_size\": 256, \"position_embedding\": \"alibi\""),
            "cfg.json: field 'position_embedding': unknown position embedding 'alibi' (expected rope or none)");
}

TEST(Config, ParseEnumNamesWhereTheValueCameFrom) {
  EXPECT_EQ(parse_enum<NormType>("layernorm", "--norm"), NormType::layernorm);
  try {
    parse_enum<MlpType>("relu", "--mlp");
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "--mlp: unknown MLP type 'relu' (expected swiglu or gelu)");
  }
}

TEST(Config, ANumberBeyondTheDoubleRangeNamesFileAndField) {
  const std::string e = error_of(R"("vocab_size": 256)", R"("vocab_size": 256, "rope_theta": 1e999)");
  EXPECT_EQ(e.rfind("cfg.json: field 'rope_theta': ", 0), 0u) << e;
  EXPECT_NE(error_of(R"("vocab_size": 256)", R"("vocab_size": 18446744073709551615)").find("field 'vocab_size'"),
            std::string::npos);
}

TEST(Config, SizesWhoseParameterCountsOverflowInt64AreRefused) {
  // vocab_size x hidden_size = 2^62 x 64: `gqe info` printed a negative parameter count.
  std::string e = error_of(R"("vocab_size": 256)", R"("vocab_size": 4611686018427387904)");
  EXPECT_NE(e.find("cfg.json: sizes too large: the embedding parameter count vocab_size (4611686018427387904) x "
                   "hidden_size (64) overflows int64"),
            std::string::npos)
      << e;
  e = error_of(R"("intermediate_size": 128)", R"("intermediate_size": 2305843009213693952)");
  EXPECT_NE(e.find("intermediate_size"), std::string::npos) << e;
  e = error_of(R"("num_hidden_layers": 2)", R"("num_hidden_layers": 1152921504606846976)");
  EXPECT_NE(e.find("overflows int64"), std::string::npos) << e;
  // Large but representable sizes are fine.
  EXPECT_EQ(error_of(R"("vocab_size": 256)", R"("vocab_size": 4000000000)"), "");
}

TEST(Config, FirstDifferenceNamesTheFieldAndIgnoresTrainingOnlyKnobs) {
  const ModelConfig a = parse_model_config(kValid, "cfg.json");
  ModelConfig b = a;
  EXPECT_EQ(first_config_difference(a, b).field, "");
  b.initializer_range = 0.5;
  b.attention.aux_loss_weight = 0.5;
  b.attention.implementation = AttentionImplementation::reference;
  EXPECT_EQ(first_config_difference(a, b).field, "");
  b.rope_theta = 500000;
  const ConfigDifference d = first_config_difference(a, b);
  EXPECT_EQ(d.field, "rope_theta");
  EXPECT_EQ(d.a, "10000.0");
  EXPECT_EQ(d.b, "500000.0");
  b = a;
  b.attention.top_k = 2;
  EXPECT_EQ(first_config_difference(a, b).field, "attention.top_k");
}

// Found by fuzz/config_fuzz: (L + 1) / 2 wrapped negative in `gqe info`.
TEST(Config, DescribeModelAtTheLargestContextDoesNotOverflow) {
  ModelConfig c = parse_model_config(kValid, "cfg.json");
  c.max_position_embeddings = INT64_MAX;
  const std::string d = describe_model(c, c.max_position_embeddings);
  // The mean over a causal prefill is taken at half the context; (L + 1) / 2 wrapped negative.
  const size_t mean = d.find("mean over a causal prefill");
  ASSERT_NE(mean, std::string::npos) << d;
  const std::string line = d.substr(mean, d.find('\n', mean) - mean);
  EXPECT_EQ(line.find('-'), std::string::npos) << line;
  EXPECT_EQ(d.find("-nan"), std::string::npos) << d;
}

}  // namespace
}  // namespace gqe
