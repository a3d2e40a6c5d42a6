// `gqe generate` through the executable (GQE_BIN): what it refuses to load.
#include <gtest/gtest.h>

#include <limits>

#include "gqe/core/fs.h"
#include "gqe/io/checkpoint.h"
#include "gqe/io/safetensors.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(CliGenerate, NonFiniteWeightsNeedTheOverrideFlag) {
  if (!test::gqe_bin_available()) GTEST_SKIP() << "GQE_BIN not set or not built";
  const std::string dir = test::scratch_dir("cli_generate_nan");
  ModelConfig c = test::small_config("gqa", 4, 2);
  c.vocab_size = 256;
  LanguageModel m(c);
  {
    torch::NoGradGuard g;
    m.named_parameters()["norm.weight"][3] = std::numeric_limits<float>::quiet_NaN();
  }
  save_model_checkpoint(dir + "/ckpt", m);
  test::CommandRun r = test::run_gqe_command("generate --checkpoint " + dir + "/ckpt --prompt In --max-new-tokens 2 --greedy");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("gqe generate: error: " + dir + "/ckpt/model.safetensors: tensor 'norm.weight' holds 1 "
                       "non-finite value(s) (NaN/Inf)"),
            std::string::npos)
      << r.out;
  r = test::run_gqe_command("generate --checkpoint " + dir + "/ckpt --prompt In --max-new-tokens 2 --greedy "
                    "--allow-nonfinite-weights");
  EXPECT_EQ(r.rc, 0) << r.out;
}

TEST(CliGenerate, AConfigThatDisagreesWithTheWeightsIsRefusedNamingTheField) {
  if (!test::gqe_bin_available()) GTEST_SKIP() << "GQE_BIN not set or not built";
  const std::string dir = test::scratch_dir("cli_generate_config");
  ModelConfig c = test::small_config("gqa", 4, 2);
  c.vocab_size = 256;
  LanguageModel m(c);
  save_model_checkpoint(dir + "/ckpt", m);
  c.rope_theta = 500000;  // edited by hand afterwards: the output would silently change
  fs::write_file_atomic(dir + "/ckpt/config.json", model_config_to_json(c));
  const test::CommandRun r = test::run_gqe_command("generate --checkpoint " + dir + "/ckpt --prompt In --max-new-tokens 2");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("field 'rope_theta' of the model config saved with these weights is 10000.0, " + dir +
                       "/ckpt/config.json has 500000.0"),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace gqe
