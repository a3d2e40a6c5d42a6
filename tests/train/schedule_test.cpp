#include <gtest/gtest.h>

#include "gqe/core/error.h"
#include "gqe/train/recipe.h"
#include "gqe/train/schedule.h"

namespace gqe {

TEST(Schedule, WarmupStableDecayValues) {
  ScheduleOptions s;
  s.peak_lr = 1.0;
  s.min_lr = 0.1;
  s.warmup_steps = 10;
  s.total_steps = 100;
  s.decay_fraction = 0.2;  // decay over steps 80..99
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 0), 0.1);
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 4), 0.5);
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 9), 1.0);
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 10), 1.0);
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 79), 1.0);
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 80), 1.0 - 0.9 * 1.0 / 20.0);
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 89), 1.0 - 0.9 * 10.0 / 20.0);
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 99), 0.1);   // the last step lands on the floor
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 150), 0.1);  // and stays there
  s.decay_shape = DecayShape::cosine;
  EXPECT_NEAR(wsd_learning_rate(s, 89), 0.1 + 0.45 * (1 + std::cos(M_PI * 0.5)), 1e-12);
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 99), 0.1);
  s.decay_shape = DecayShape::sqrt;
  EXPECT_NEAR(wsd_learning_rate(s, 84), 1.0 - 0.9 * std::sqrt(0.25), 1e-12);
  s.decay_fraction = 0;  // warmup-stable only
  EXPECT_DOUBLE_EQ(wsd_learning_rate(s, 99), 1.0);
}

TEST(Schedule, RejectsBadSchedules) {
  ScheduleOptions s;
  s.total_steps = 10;
  s.warmup_steps = 9;
  s.decay_fraction = 0.2;
  EXPECT_THROW(validate_schedule(s, "x.json"), ConfigError);  // 9 + 2 > 10
  s.warmup_steps = 1;
  s.min_lr = 1.0;  // above the peak
  EXPECT_THROW(validate_schedule(s, "x.json"), ConfigError);
}

TEST(Recipe, AccumulationAndTokenLengths) {
  TrainRecipe r;
  r.seq_len = 2048;
  r.micro_batch = 8;
  r.global_batch_tokens = 512 * 2048;  // the paper's ~1M-token batch
  r.total_tokens = 30e9;
  r.warmup_tokens = 3e9;
  resolve_recipe(r, 16, "test");
  EXPECT_EQ(accumulation_steps(r, 16), 4);  // 16 ranks x 8 x 2048 x 4 = 1,048,576
  EXPECT_EQ(r.schedule.total_steps, 28611);  // ceil(30e9 / 1048576)
  EXPECT_EQ(r.schedule.warmup_steps, 2862);
  r.global_batch_tokens = 1000;
  EXPECT_THROW(accumulation_steps(r, 16), ConfigError);
  TrainRecipe a;
  a.schedule.total_steps = 50;
  resolve_recipe(a, 1, "test");
  EXPECT_EQ(a.schedule.warmup_steps, 5);  // automatic: 10%
}

// micro_batch x seq_len x ranks beyond int64 wrapped: to 0 (a division by zero, SIGFPE, in
// accumulation_steps) or to a negative token count in the message.
TEST(Recipe, MicroStepTokensBeyondInt64AreAConfigErrorNotAWrap) {
  for (const auto& [batch, seq] : {std::pair<int64_t, int64_t>{int64_t(1) << 40, int64_t(1) << 24},
                                   std::pair<int64_t, int64_t>{3074457345618258603, 3}}) {
    TrainRecipe r;
    r.micro_batch = batch;
    r.seq_len = seq;
    r.global_batch_tokens = 64;
    try {
      resolve_recipe(r, 1, "command line");
      FAIL() << batch << " x " << seq;
    } catch (const ConfigError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("command line: field 'micro_batch': micro_batch " + std::to_string(batch) + " x seq_len " +
                       std::to_string(seq) + " x 1 rank(s): the tokens of one micro-step overflow int64"),
                std::string::npos)
          << m;
      EXPECT_EQ(m.find("-9"), std::string::npos) << m;
    }
    EXPECT_THROW(accumulation_steps(r, 1), ConfigError);
    r.global_batch_tokens = 0;  // the step is then the micro-step
    EXPECT_THROW(tokens_per_step(r, 1), ConfigError);
  }
}

TEST(Recipe, UnknownKeyIsAnError) {
  TrainRecipe r;
  try {
    apply_recipe_json(r, nlohmann::json::parse(R"({"lr": 1e-3, "learning_rate": 2})"), "recipe.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("learning_rate"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("recipe.json"), std::string::npos);
  }
  EXPECT_THROW(apply_recipe_json(r, nlohmann::json::parse(R"({"steps": 2.5})"), "r"), ConfigError);
  apply_recipe_json(r, nlohmann::json::parse(R"({"steps": 1e3, "lr": 5e-4})"), "r");
  EXPECT_EQ(r.schedule.total_steps, 1000);
  EXPECT_DOUBLE_EQ(r.schedule.peak_lr, 5e-4);
}

// Closed sets are read and written in their JSON spelling (checkpoints' recipes and fingerprints stay
// byte-identical); an unknown value names the file and field and lists the valid ones.
TEST(Recipe, ClosedSetFieldsKeepTheirSpellingAndListTheValidNames) {
  TrainRecipe r;
  auto apply = [&](const char* text) { apply_recipe_json(r, nlohmann::json::parse(text), "r.json"); };
  auto error_of = [&](const char* text) -> std::string {
    try {
      apply(text);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(recipe_to_json(r).at("precision"), "auto");
  EXPECT_EQ(recipe_to_json(r).at("decay_shape"), "linear");
  apply(R"({"decay_shape": "sqrt", "precision": "bf16"})");
  EXPECT_EQ(r.schedule.decay_shape, DecayShape::sqrt);
  EXPECT_EQ(r.precision, Precision::bf16);
  EXPECT_EQ(recipe_to_json(r).at("decay_shape"), "sqrt");
  EXPECT_EQ(recipe_to_json(r).at("precision"), "bf16");
  EXPECT_EQ(error_of(R"({"decay_shape": "exp"})"),
            "r.json: field 'decay_shape': unknown decay shape 'exp' (expected linear, cosine or sqrt)");
  EXPECT_EQ(error_of(R"({"precision": "fp16"})"),
            "r.json: field 'precision': unknown precision 'fp16' (expected auto, fp32 or bf16)");
  EXPECT_EQ(error_of(R"({"precision": 16})"), "r.json: field 'precision': unexpected value 16");
}

TEST(Recipe, DataSeedIsItsOwnOnlyWhenGiven) {
  TrainRecipe r;
  r.seed = 5;
  EXPECT_EQ(r.data_order_seed(), 5u);  // without data_seed the order follows the seed
  // A recipe without its own data order writes no field: runs from before it keep their fingerprint.
  EXPECT_FALSE(recipe_to_json(r).contains("data_seed"));
  apply_recipe_json(r, nlohmann::json::parse(R"({"data_seed": 9})"), "r.json");
  EXPECT_EQ(r.data_order_seed(), 9u);
  EXPECT_EQ(r.seed, 5u);
  EXPECT_EQ(recipe_to_json(r).at("data_seed"), 9);
  r.data_seed = 5;  // the same as the seed: the same run as without it
  EXPECT_FALSE(recipe_to_json(r).contains("data_seed"));
  try {
    apply_recipe_json(r, nlohmann::json::parse(R"({"data_seed": -2})"), "r.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("r.json: field 'data_seed': expected >= 0, got -2"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(apply_recipe_json(r, nlohmann::json::parse(R"({"data_seed": 1.5})"), "r"), ConfigError);
}

}  // namespace gqe
