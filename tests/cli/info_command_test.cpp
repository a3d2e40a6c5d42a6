// `gqe info` through the executable (GQE_BIN): config values it cannot represent are errors naming the
// file and the field.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "gqe/train/schedule.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(CliInfo, OutOfRangeNumbersAndOverflowingSizesAreConfigErrors) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("cli_info");
  const std::string attention = R"("attention": {"kind": "gqa", "num_attention_heads": 4, "num_key_value_heads": 2})";
  std::ofstream(dir + "/inf.json") << R"({"vocab_size": 256, "hidden_size": 64, "rope_theta": 1e999, )" << attention << "}";
  test::CommandRun r = test::run_gqe({"info", dir + "/inf.json"});
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_EQ(r.out, "gqe info: error: " + dir + "/inf.json: field 'rope_theta': the number 1e999 is out of range "
                   "(beyond the largest double)\n");
  std::ofstream(dir + "/big.json") << R"({"vocab_size": 4611686018427387904, "hidden_size": 1024, )" << attention << "}";
  r = test::run_gqe({"info", dir + "/big.json"});
  EXPECT_TRUE(test::fails_with(r, dir + "/big.json: sizes too large: the embedding parameter count vocab_size "
                                        "(4611686018427387904) x hidden_size (1024) overflows int64"));
  EXPECT_EQ(r.out.find("parameters:"), std::string::npos) << r.out;  // no (negative) counts printed
}

// The derived counts at an absurd context or from sizes whose FLOPs pass int64: the numbers, large, never a
// value wrapped negative (std::llround of 3.3e22 FLOPs printed -9223372036854775808).
TEST(CliInfo, AbsurdContextsAndSizesGiveLargeNumbersNotWrappedNegatives) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("cli_info_large");
  std::ofstream(dir + "/tiny.json") << R"({"vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2,
    "attention": {"kind": "gqe", "num_attention_heads": 4, "num_key_value_heads": 2, "top_k": 1}})";
  // Embedding 2^62 parameters (tied), so the lm head's 2 x 2^30 x 2^32 FLOPs per token are 2^63.
  std::ofstream(dir + "/wide.json") << R"({"vocab_size": 4294967296, "hidden_size": 1073741824, "num_hidden_layers": 1,
    "intermediate_size": 1, "tie_word_embeddings": true,
    "attention": {"kind": "gqa", "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 2}})";
  for (const auto& [file, extra] :
       std::vector<std::pair<std::string, test::Args>>{{"tiny.json", {"--context", "1000000000000000000"}},
                                                       {"tiny.json", {"--context", "9223372036854775807"}},
                                                       {"wide.json", {}},
                                                       {"wide.json", {"--context", "9223372036854775807"}}}) {
    const test::CommandRun r = test::run_gqe(test::concat({"info", dir + "/" + file}, extra));
    EXPECT_TRUE(test::exited(r, 0));
    const size_t at = r.out.find("model forward FLOPs per token");
    ASSERT_NE(at, std::string::npos) << r.command << "\n" << r.out;
    const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
    EXPECT_EQ(line.find('-'), std::string::npos) << r.command << ": " << line;
    EXPECT_NE(line.find("e+"), std::string::npos) << r.command << ": " << line;  // beyond 1e18: scientific notation
    EXPECT_EQ(r.out.find("-9223372036854775808"), std::string::npos) << r.command << "\n" << r.out;
    EXPECT_EQ(r.out.find("nan"), std::string::npos) << r.command << "\n" << r.out;
  }
  EXPECT_NE(test::run_gqe({"info", dir + "/wide.json"}).out.find("(9.223372e+18;"), std::string::npos);
  // A context beyond int64, or not an integer: an error naming the option.
  for (const std::string& ctx : {"9223372036854775808", "1e18"}) {
    const test::CommandRun r = test::run_gqe({"info", dir + "/tiny.json", "--context", ctx});
    EXPECT_TRUE(test::fails_with(r, "error: --context expects an integer, got '" + ctx + "'"));
  }
}

// `gqe info --schedule`: the phases of gqe train's schedule for the same flags, which the study scripts branch
// their budgets at (decay_start: the first step whose learning rate is below the peak).
TEST(CliInfo, ScheduleGivesTheTrainersPhasesAsJson) {
  GQE_SKIP_WITHOUT_BIN();
  struct Case {
    int64_t steps, warmup;
    double decay_fraction;
    int64_t decay_start;  // steps - round(decay_fraction * steps), by hand
  };
  for (const Case& c : {Case{40, 30, 0.2, 32}, Case{42, 30, 0.2, 34}, Case{126, 30, 0.2, 101},
                        Case{607, 30, 0.2, 486}, Case{2400, 30, 0.2, 1920}, Case{10, 2, 0.2, 8},
                        Case{5, 0, 0.1, 4} /* 0.5 decay steps round up, as llround */}) {
    const test::Args flags = {"--steps", std::to_string(c.steps), "--warmup", std::to_string(c.warmup),
                              "--decay-fraction", std::to_string(c.decay_fraction), "--lr", "0.003", "--min-lr",
                              "0.0003"};
    const test::CommandRun r = test::run_gqe(test::concat({"info", "--schedule"}, flags));
    ASSERT_TRUE(test::exited(r, 0));
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["total_steps"], c.steps) << r.out;
    EXPECT_EQ(j["warmup_steps"], c.warmup) << r.out;
    EXPECT_EQ(j["decay_start"], c.decay_start) << r.out;
    EXPECT_EQ(j["decay_steps"], c.steps - c.decay_start) << r.out;
    EXPECT_EQ(j["stable_steps"], c.decay_start - c.warmup) << r.out;
    EXPECT_EQ(j["peak_lr"], 0.003) << r.out;
    EXPECT_EQ(j["min_lr"], 0.0003) << r.out;
    EXPECT_EQ(j["decay_shape"], "linear") << r.out;
    ScheduleOptions s;
    s.total_steps = c.steps;
    s.warmup_steps = c.warmup;
    s.decay_fraction = c.decay_fraction;
    EXPECT_EQ(wsd_learning_rate(s, c.decay_start - 1), s.peak_lr) << r.command;
    EXPECT_LT(wsd_learning_rate(s, c.decay_start), s.peak_lr) << r.command;
  }
  // gqe train's defaults: warmup 10% of the steps, decay over the last 20%, peak 3e-3, floor a tenth of it.
  test::CommandRun r = test::run_gqe({"info", "--schedule", "--steps", "100"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, "{\"total_steps\":100,\"warmup_steps\":10,\"stable_steps\":70,\"decay_start\":80,"
                   "\"decay_steps\":20,\"peak_lr\":0.003,\"min_lr\":0.0003,\"decay_fraction\":0.2,"
                   "\"decay_shape\":\"linear\"}\n");
  // A schedule gqe train would refuse is refused with its message; the flags belong to --schedule.
  r = test::run_gqe({"info", "--schedule", "--steps", "40", "--warmup", "35"});
  EXPECT_TRUE(test::fails_with(r, "field 'warmup_steps': 35 warmup + 8 decay steps exceed the 40 total steps"));
  r = test::run_gqe({"info", "--schedule", "--warmup", "3"});
  EXPECT_TRUE(test::fails_with(r, "--schedule needs --steps T"));
  const std::string config = test::source_dir() + "/configs/tiny-gqe.json";
  r = test::run_gqe({"info", config, "--steps", "40"});
  EXPECT_TRUE(test::fails_with(r, "--steps needs --schedule"));
  EXPECT_TRUE(test::exited(test::run_gqe({"info", "--schedule", "--steps", "40", config}), 2));
}

}  // namespace
}  // namespace gqe
