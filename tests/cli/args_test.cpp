// cli::Args: what the strict parser refuses, with messages naming the option and value, and what it
// still accepts (inline values, negative numbers, `--`, declared positionals); then the same through the
// gqe executable ($GQE_BIN), with gqe generate's context limit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "gqe/cli/args.h"
#include "gqe/core/error.h"
#include "gqe/io/checkpoint.h"
#include "test_util.h"

using gqe::cli::Args;
using gqe::cli::Positionals;

namespace {

// Args over a list of strings (argv excludes the program and command names, as in the commands).
Args parse(std::vector<std::string> argv, const Positionals& positionals = {}) {
  std::vector<char*> p;
  for (auto& a : argv) p.push_back(a.data());
  return Args("test", int(p.size()), p.data(),
              {"out", "threads", "temperature", "top-p", "limit", "prompt", "implementation", "norms"},
              {"help", "force"}, positionals);
}

// The message of the gqe::Error that parsing (and `then` on the result) throws; "" when none.
template <typename F>
std::string error_of(std::vector<std::string> argv, F then, const Positionals& positionals = {}) {
  try {
    then(parse(std::move(argv), positionals));
  } catch (const gqe::Error& e) {
    return e.what();
  }
  return "";
}
std::string error_of(std::vector<std::string> argv, const Positionals& positionals = {}) {
  return error_of(std::move(argv), [](const Args&) {}, positionals);
}

void expect_contains(const std::string& msg, const std::vector<std::string>& parts) {
  EXPECT_FALSE(msg.empty()) << "no error";
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

}  // namespace

TEST(Args, AValueDoesNotSwallowTheNextOption) {
  expect_contains(error_of({"--out", "--threads", "1"}), {"--out", "needs a value", "--threads"});
  expect_contains(error_of({"--out"}), {"--out", "needs a value"});
  // A value that starts with -- is still possible, written inline.
  EXPECT_EQ(parse({"--out=--threads"}).get("out", ""), "--threads");
  // Single-dash values are values: negative numbers, "-" for a stream.
  EXPECT_EQ(parse({"--temperature", "-1", "--out", "-"}).get("out", ""), "-");
  EXPECT_EQ(parse({"--temperature", "-1"}).get_double("temperature", 0), -1.0);
}

TEST(Args, PositionalsAreRefusedUnlessDeclared) {
  expect_contains(error_of({"--out", "dir", "extra"}), {"unexpected argument 'extra'", "no positional"});
  expect_contains(error_of({"--", "--force"}), {"unexpected argument '--force'"});
  EXPECT_EQ(parse({"a", "--out", "d", "b"}, Positionals::any("INPUT")).positional(), (std::vector<std::string>{"a", "b"}));
  // After `--` everything is positional, options-looking or not.
  EXPECT_EQ(parse({"--", "--force", "-x"}, Positionals::any("INPUT")).positional(),
            (std::vector<std::string>{"--force", "-x"}));
  expect_contains(error_of({"a", "b"}, Positionals{"CONFIG", 1, 1}), {"'b'", "at most 1 CONFIG"});
  expect_contains(error_of({}, Positionals{"CONFIG", 1, 1}), {"at least 1 CONFIG", "got 0"});
  EXPECT_TRUE(parse({"-h"}).flag("help"));
}

TEST(Args, DuplicatesAreErrors) {
  expect_contains(error_of({"--out", "a", "--out=b"}), {"--out", "given twice", "'a'", "'b'"});
  expect_contains(error_of({"--force", "--force"}), {"--force", "given twice"});
  expect_contains(error_of({"--force=yes"}), {"--force", "takes no value"});
  expect_contains(error_of({"--bogus", "1"}), {"unknown option --bogus", "--out", "--force"});
}

TEST(Args, NumbersAreFiniteAndWhole) {
  for (const char* bad : {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "1e999", "", " 1", "1x", "0.5.1"}) {
    expect_contains(error_of({"--temperature", bad}, [](const Args& a) { a.get_double("temperature", 0); }),
                    {"--temperature", "finite number", std::string("'") + bad + "'"});
  }
  for (const char* bad : {"1.5", "1e3", "", " 7", "7 ", "0x10", "99999999999999999999", "nan"}) {
    expect_contains(error_of({"--threads", bad}, [](const Args& a) { a.get_int("threads", 0); }),
                    {"--threads", "integer", std::string("'") + bad + "'"});
  }
  EXPECT_EQ(parse({"--threads", "-3"}).get_int("threads", 0), -3);
  EXPECT_EQ(parse({"--threads=+4"}).get_int("threads", 0), 4);
  EXPECT_DOUBLE_EQ(parse({"--temperature", ".25"}).get_double("temperature", 0), 0.25);
  EXPECT_DOUBLE_EQ(parse({"--temperature", "2e-3"}).get_double("temperature", 0), 2e-3);
  EXPECT_EQ(parse({}).get_double("temperature", 0.8), 0.8);  // defaults are not checked
}

TEST(Args, RangesNameTheInterval) {
  expect_contains(error_of({"--top-p", "1.5"}, [](const Args& a) { a.get_positive_double("top-p", 1, 1); }),
                  {"--top-p", "in (0, 1]", "'1.5'"});
  expect_contains(error_of({"--top-p", "0"}, [](const Args& a) { a.get_positive_double("top-p", 1, 1); }),
                  {"--top-p", "in (0, 1]", "'0'"});
  expect_contains(error_of({"--limit", "nan"}, [](const Args& a) { a.get_positive_double("limit", 0); }),
                  {"--limit", "> 0", "'nan'"});
  expect_contains(error_of({"--temperature", "-0.1"}, [](const Args& a) { a.get_double("temperature", 0, 0.0); }),
                  {"--temperature", ">= 0", "'-0.1'"});
  expect_contains(error_of({"--temperature", "3"}, [](const Args& a) { a.get_double("temperature", 0, 0.0, 2.0); }),
                  {"in [0, 2]"});
  expect_contains(error_of({"--threads", "0"}, [](const Args& a) { a.get_int("threads", 1, 1, 64); }),
                  {"--threads", "integer in [1, 64]", "'0'"});
  expect_contains(error_of({"--threads", "-1"}, [](const Args& a) { a.get_int("threads", 1, 0); }),
                  {"integer >= 0"});
  EXPECT_EQ(parse({"--top-p", "1"}).get_positive_double("top-p", 0.5, 1.0), 1.0);
  EXPECT_EQ(parse({"--threads", "64"}).get_int("threads", 1, 1, 64), 64);
}

TEST(Args, ClosedSetsListTheValidValues) {
  using gqe::AttentionImplementation;
  using gqe::NormType;
  EXPECT_EQ(parse({"--implementation", "reference"}).get_enum("implementation", AttentionImplementation::fast),
            AttentionImplementation::reference);
  EXPECT_EQ(parse({}).get_enum("implementation", AttentionImplementation::fast), AttentionImplementation::fast);
  EXPECT_EQ(error_of({"--implementation", "flash"},
                     [](const Args& a) { a.get_enum("implementation", AttentionImplementation::fast); }),
            "gqe test: --implementation: unknown attention implementation 'flash' (expected fast or reference)");
  EXPECT_EQ(parse({"--norms", "layernorm,rmsnorm"}).get_enum_list("norms", std::vector<NormType>{}),
            (std::vector<NormType>{NormType::layernorm, NormType::rmsnorm}));
  EXPECT_EQ(error_of({"--norms", "rmsnorm,batchnorm"},
                     [](const Args& a) { a.get_enum_list("norms", std::vector<NormType>{}); }),
            "gqe test: --norms: unknown norm type 'batchnorm' (expected rmsnorm or layernorm)");
}

// Through the executable: the commands declare what they take.
TEST(ArgsCommands, TrainAndExperimentRefuseSwallowedValuesPositionalsAndNaN) {
  if (gqe::test::gqe_bin().empty()) GTEST_SKIP() << "GQE_BIN not set to the gqe executable";
  const std::string dir = gqe::test::scratch_dir("args_train");
  auto r = gqe::test::run_gqe_command("train --config c.json --data d.txt --out --threads 1", dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("option --out needs a value, got the option '--threads'"), std::string::npos) << r.out;
  EXPECT_NE(::access((dir + "/--threads").c_str(), F_OK), 0) << "a run directory named --threads was made";
  r = gqe::test::run_gqe_command("train --config c.json stray --out o", dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("unexpected argument 'stray'"), std::string::npos) << r.out;
  r = gqe::test::run_gqe_command("train --steps 3 --config c.json --steps 4", dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("option --steps given twice ('3' and '4')"), std::string::npos) << r.out;
  // Token counts: positive and small enough that their step count fits (1e30 once overflowed to one step).
  const std::string cfg = std::string(std::getenv("GQE_SOURCE_DIR") ? std::getenv("GQE_SOURCE_DIR") : ".") +
                          "/configs/tiny-gqe.json";
  for (const char* bad : {"--tokens 1e30", "--tokens -5", "--tokens 0", "--warmup -3"}) {
    r = gqe::test::run_gqe_command("train --config " + cfg + " --data d.txt --out o " + bad, dir);
    EXPECT_EQ(r.rc, 1) << bad << ": " << r.out;
    EXPECT_NE(r.out.find(std::string(bad).substr(0, std::string(bad).find(' '))), std::string::npos) << bad << ": " << r.out;
  }
  r = gqe::test::run_gqe_command("experiment --config c.json --out o --eval-limit nan", dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("--eval-limit expects a number >= 0, got 'nan'"), std::string::npos) << r.out;
}

TEST(ArgsCommands, BenchListsTheValidShapesLevelsAndImplementations) {
  if (gqe::test::gqe_bin().empty()) GTEST_SKIP() << "GQE_BIN not set to the gqe executable";
  const std::string dir = gqe::test::scratch_dir("args_bench");
  const std::pair<const char*, const char*> cases[] = {
      {"--levels core,blocks", "--levels: unknown prefill level 'blocks' (expected core, layer, block or model)"},
      {"--shapes tiny", "--shapes: unknown bench shape 'tiny' (expected paper or small)"},
      {"--implementation flash", "--implementation: unknown attention implementation 'flash' (expected fast or reference)"},
  };
  for (const auto& [flag, message] : cases) {
    auto r = gqe::test::run_gqe_command("bench " + std::string(flag) + " --out o", dir);
    EXPECT_EQ(r.rc, 1) << flag << ": " << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << flag << ": " << r.out;
  }
}

TEST(ArgsCommands, TrainAndInfoListTheValidPrecisionsAndDecayShapes) {
  if (gqe::test::gqe_bin().empty()) GTEST_SKIP() << "GQE_BIN not set to the gqe executable";
  const std::string dir = gqe::test::scratch_dir("args_train_sets");
  const std::string cfg = std::string(std::getenv("GQE_SOURCE_DIR") ? std::getenv("GQE_SOURCE_DIR") : ".") +
                          "/configs/tiny-gqe.json";
  const std::string train = "train --config " + cfg + " --data d.txt --out o ";
  const std::pair<std::string, const char*> cases[] = {
      {train + "--precision fp16", "--precision: unknown precision 'fp16' (expected auto, fp32 or bf16)"},
      {train + "--decay-shape exp", "--decay-shape: unknown decay shape 'exp' (expected linear, cosine or sqrt)"},
      {"info --schedule --steps 40 --decay-shape exp",
       "--decay-shape: unknown decay shape 'exp' (expected linear, cosine or sqrt)"},
  };
  for (const auto& [command, message] : cases) {
    auto r = gqe::test::run_gqe_command(command, dir);
    EXPECT_EQ(r.rc, 1) << command << ": " << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << command << ": " << r.out;
  }
}

TEST(ArgsCommands, GenerateChecksNumbersAndTheContext) {
  if (gqe::test::gqe_bin().empty()) GTEST_SKIP() << "GQE_BIN not set to the gqe executable";
  const std::string dir = gqe::test::scratch_dir("args_generate");
  gqe::ModelConfig c = gqe::test::small_config("gqa", 4, 2);
  c.vocab_size = 256;
  c.max_position_embeddings = 16;
  at::manual_seed(1);
  gqe::LanguageModel m(c);
  gqe::save_model_checkpoint(dir + "/ckpt", m);
  for (const char* bad : {"--temperature nan", "--temperature -1", "--top-p 0", "--top-p inf", "--top-k -1",
                          "--max-new-tokens 1.5"}) {
    auto r = gqe::test::run_gqe_command("generate --checkpoint ckpt --prompt hi " + std::string(bad), dir);
    EXPECT_EQ(r.rc, 1) << bad << ": " << r.out;
    EXPECT_NE(r.out.find(std::string(bad).substr(0, std::string(bad).find(' ')) + " expects"), std::string::npos)
        << r.out;
  }
  // Over the 16-token context: an error, not an empty output with exit 0.
  auto r = gqe::test::run_gqe_command("generate --checkpoint ckpt --greedy --prompt " + std::string(17, 'a'), dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("the prompt is 17 tokens, longer than the model's context of 16 tokens"), std::string::npos)
      << r.out;
  // At it: the one token that fits, and a note saying why generation stops there.
  r = gqe::test::run_gqe_command("generate --checkpoint ckpt --greedy --max-new-tokens 5 --prompt " +
                                 std::string(16, 'a'), dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("leaves room for 1 new token(s) in the model's context of 16"), std::string::npos) << r.out;
}
