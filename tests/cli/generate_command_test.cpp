// `gqe generate` through the executable (GQE_BIN): what it refuses to load.
#include <gtest/gtest.h>

#include <limits>

#include <nlohmann/json.hpp>

#include "gqe/core/fs.h"
#include "gqe/attention/attention_dtype.h"
#include "gqe/io/checkpoint.h"
#include "gqe/io/safetensors.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(CliGenerate, NonFiniteWeightsNeedTheOverrideFlag) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("cli_generate_nan");
  ModelConfig c = test::small_config("gqa", 4, 2);
  c.vocab_size = 256;
  LanguageModel m(c);
  {
    torch::NoGradGuard g;
    m.named_parameters()["norm.weight"][3] = std::numeric_limits<float>::quiet_NaN();
  }
  save_model_checkpoint(dir + "/ckpt", m);
  test::CommandRun r =
      test::run_gqe({"generate", "--checkpoint", dir + "/ckpt", "--prompt", "In", "--max-new-tokens", "2", "--greedy"});
  EXPECT_TRUE(test::fails_with(r, "gqe generate: error: " + dir + "/ckpt/model.safetensors: tensor 'norm.weight' "
                                  "holds 1 non-finite value(s) (NaN/Inf)"));
  r = test::run_gqe({"generate", "--checkpoint", dir + "/ckpt", "--prompt", "In", "--max-new-tokens", "2", "--greedy",
                     "--allow-nonfinite-weights"});
  EXPECT_EQ(r.rc, 0) << r.out;
}

// --dtype: fp32, bf16 and auto generate (bf16 only where the CPU has AVX512-BF16); an explicit bf16 on a CPU
// without it (GQE_CPU_BF16=0 stands in for one) is a one-line error, auto falls back to fp32 there.
TEST(CliGenerate, DtypeChoosesTheAttentionPrecision) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("cli_generate_dtype");
  ModelConfig c = test::small_config("gqe", 8, 4, 1, "gqe", 8, 32);
  c.vocab_size = 256;
  LanguageModel m(c);
  save_model_checkpoint(dir + "/ckpt", m);
  auto gen = [&](const std::string& dtype, const test::RunOptions& o = {}) {
    return test::run_gqe({"generate", "--checkpoint", dir + "/ckpt", "--prompt", "In the", "--max-new-tokens", "8",
                          "--greedy", "--dtype", dtype},
                         o);
  };
  const bool has_bf16 = cpu_has_bf16_attention();
  for (const char* dtype : {"fp32", "auto", "bf16"}) {
    const test::CommandRun r = gen(dtype);
    if (std::string(dtype) == "bf16" && !has_bf16)
      EXPECT_TRUE(test::fails_with(r, "gqe generate: error: --dtype bf16: this CPU has no AVX512-BF16"))
          << r.out;
    else
      EXPECT_EQ(r.rc, 0) << dtype << ": " << r.out;
  }
  const test::RunOptions no_bf16 = test::RunOptions().with_env("GQE_CPU_BF16", "0");
  test::CommandRun r = gen("bf16", no_bf16);
  EXPECT_TRUE(test::fails_with(r, "gqe generate: error: --dtype bf16: this CPU has no AVX512-BF16 (vdpbf16ps)"));
  EXPECT_EQ(gen("auto", no_bf16).rc, 0);
  EXPECT_TRUE(test::fails_with(gen("bf32"), "--dtype: unknown attention dtype 'bf32' (expected auto, bf16 or fp32)"));
}

TEST(CliGenerate, AConfigThatDisagreesWithTheWeightsIsRefusedNamingTheField) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("cli_generate_config");
  ModelConfig c = test::small_config("gqa", 4, 2);
  c.vocab_size = 256;
  LanguageModel m(c);
  save_model_checkpoint(dir + "/ckpt", m);
  c.rope_theta = 500000;  // edited by hand afterwards: the output would silently change
  fs::write_file_atomic(dir + "/ckpt/config.json", model_config_to_json(c));
  const test::CommandRun r =
      test::run_gqe({"generate", "--checkpoint", dir + "/ckpt", "--prompt", "In", "--max-new-tokens", "2"});
  EXPECT_TRUE(test::fails_with(r, "field 'rope_theta' of the model config saved with these weights is 10000.0, " +
                                      dir + "/ckpt/config.json has 500000.0"));
}

TEST(CliGenerate, PromptsFileGeneratesEveryLineAsOneBatch) {
  // Lines of different lengths generated together give each line's single-prompt completion (greedy);
  // empty lines are skipped; bad files are one-line errors naming the file (and the line).
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("cli_generate_prompts");
  ModelConfig c = test::small_config("gqe", 8, 4);
  c.vocab_size = 256;
  at::manual_seed(4);
  LanguageModel m(c);
  test::randomise_routers(m);
  save_model_checkpoint(dir + "/ckpt", m);
  const std::vector<std::string> lines = {"In the beginning", "A", "And the earth was without form"};
  fs::write_file_atomic(dir + "/prompts.txt", lines[0] + "\n\n" + lines[1] + "\r\n" + lines[2]);
  const test::Args common = {"generate", "--checkpoint", dir + "/ckpt", "--greedy", "--max-new-tokens", "6"};
  test::CommandRun r = test::run_gqe(test::concat(common, {"--prompts", dir + "/prompts.txt"}));
  ASSERT_EQ(r.rc, 0) << r.out;
  std::vector<nlohmann::json> objs;
  size_t pos = 0;
  while (pos < r.out.size()) {
    const size_t end = r.out.find('\n', pos);
    objs.push_back(nlohmann::json::parse(r.out.substr(pos, end - pos)));
    pos = end + 1;
  }
  ASSERT_EQ(objs.size(), lines.size()) << r.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(objs[i]["prompt"], lines[i]);
    const test::CommandRun one = test::run_gqe(test::concat(common, {"--print-tokens", "--prompt", lines[i]}));
    ASSERT_EQ(one.rc, 0) << one.out;
    std::string ids;
    for (int64_t t : objs[i]["tokens"].get<std::vector<int64_t>>()) ids += " " + std::to_string(t);
    EXPECT_NE(one.out.find("generated tokens:" + ids + "\n"), std::string::npos) << "line " << i << ": " << one.out;
    EXPECT_EQ(objs[i]["tokens"].size(), 6u);
  }
  fs::write_file_atomic(dir + "/empty.txt", "\n\n");
  r = test::run_gqe(test::concat(common, {"--prompts", dir + "/empty.txt"}));
  EXPECT_TRUE(test::fails_with(r, dir + "/empty.txt: no prompts"));
  fs::write_file_atomic(dir + "/long.txt", "short\n" + std::string(300, 'x') + "\n");
  r = test::run_gqe(test::concat(common, {"--prompts", dir + "/long.txt"}));
  EXPECT_TRUE(
      test::fails_with(r, dir + "/long.txt: line 2: the prompt is 300 tokens, longer than the model's context of 256"));
  r = test::run_gqe(test::concat(common, {"--prompts", dir + "/prompts.txt", "--prompt", "A"}));
  EXPECT_TRUE(test::fails_with(r, "give --prompt or --prompts, not both"));
}

}  // namespace
}  // namespace gqe
