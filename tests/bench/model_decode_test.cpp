// gqe bench's whole-model decode bookkeeping: the weight bytes a step reads (the limit's denominator), the
// table and JSON, one tiny run end to end; and the read bandwidth it is measured against.
#include "gqe/bench/model_decode.h"

#include <gtest/gtest.h>

#include <fstream>

#include "gqe/bench/read_bandwidth.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "test_util.h"

namespace gqe {
namespace {

ModelConfig tiny(AttentionKind kind, bool tied) {
  ModelConfig c;
  c.vocab_size = 64, c.hidden_size = 32, c.intermediate_size = 48, c.num_hidden_layers = 2;
  c.max_position_embeddings = 64, c.tie_word_embeddings = tied;
  c.attention.kind = kind, c.attention.num_heads = 4, c.attention.num_kv_heads = 2, c.attention.head_dim = 8;
  c.attention.top_k = 1;
  return c;
}

TEST(ModelDecode, WeightBytesCountWhatAStepReads) {
  const double f = 4;  // float32
  // GQA, tied: every parameter (the LM head reads the embedding whole).
  const ModelConfig gqa = tiny(AttentionKind::gqa, true);
  const double layer = 32 * 2 /*norms*/ + 32 * 32 /*q*/ + 2 * 16 * 32 /*k, v*/ + 32 * 32 /*o*/ + 3 * 32 * 48;
  EXPECT_DOUBLE_EQ(bench::decode_weight_bytes(gqa, 1), f * (64 * 32 + 2 * layer + 32));
  // Untied: the embedding's rows of the batch only, the head whole.
  const ModelConfig untied = tiny(AttentionKind::gqa, false);
  EXPECT_DOUBLE_EQ(bench::decode_weight_bytes(untied, 2), f * (2 * 32 + 2 * layer + 32 + 64 * 32));
  // GQE (M = 2, k = 1): one token reads half of q_proj; two or more read it all.
  const ModelConfig gqe = tiny(AttentionKind::gqe, true);
  const double b1 = bench::decode_weight_bytes(gqe, 1), b2 = bench::decode_weight_bytes(gqe, 2);
  EXPECT_DOUBLE_EQ(b2 - b1, f * 2 * (32 * 32 / 2));
}

TEST(ModelDecode, RunsTheConfigsAndReportsTheirLimits) {
  const std::string dir = test::scratch_dir("model_decode");
  const std::string gqa = dir + "/tiny-gqa.json", gqe = dir + "/tiny-gqe.json";
  fs::write_file_atomic(gqa, model_config_to_json(tiny(AttentionKind::gqa, true)));
  fs::write_file_atomic(gqe, model_config_to_json(tiny(AttentionKind::gqe, true)));
  bench::ModelDecodeOptions o;
  o.configs = {gqa, gqe}, o.batches = {1, 3}, o.context = 5, o.tokens = 3, o.repeats = 2, o.read_bandwidth_gbs = 10;
  const auto rows = bench::run_model_decode(o, nullptr);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].model, "tiny-gqa");
  EXPECT_EQ(rows[1].kind, "gqe");
  EXPECT_EQ(rows[3].batch, 3);
  for (const auto& r : rows) {
    EXPECT_GT(r.tok_s, 0);
    EXPECT_LE(r.min_tok_s, r.tok_s);
    EXPECT_GE(r.max_tok_s, r.tok_s);
    EXPECT_NEAR(r.limit_tok_s, 10e9 / (r.weight_mb * 1e6) * double(r.batch), 1e-6 * r.limit_tok_s);
  }
  const std::string table = bench::model_decode_table(rows, 10);
  EXPECT_NE(table.find("tiny-gqe"), std::string::npos) << table;
  EXPECT_NE(bench::model_decode_table({}, 10).find("read bandwidth 10.0 GB/s"), std::string::npos);
  const auto j = bench::model_decode_json(rows);
  ASSERT_EQ(j.size(), 4u);
  EXPECT_DOUBLE_EQ(j[0]["percent_of_limit"].get<double>(), 100.0 * rows[0].tok_s / rows[0].limit_tok_s);
  // A context the model cannot hold is refused, naming the config.
  o.context = 62;
  EXPECT_THROW(bench::run_model_decode(o, nullptr), Error);
}

TEST(ReadBandwidth, IsMeasured) {
  const double gbs = bench::measure_read_bandwidth_gbs(1);
  EXPECT_GT(gbs, 0.1);
  EXPECT_LT(gbs, 10000);
}

}  // namespace
}  // namespace gqe
