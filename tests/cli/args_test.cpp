// cli::Args: what the strict parser refuses, with messages naming the option and value, and what it
// still accepts (inline values, negative numbers, `--`, declared positionals); then the same through the
// gqe executable ($GQE_BIN), with gqe generate's context limit.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "gqe/cli/args.h"
#include "gqe/core/error.h"
#include "gqe/io/checkpoint.h"
#include "process_util.h"
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
TEST(ArgsCommands, TrainRefusesSwallowedValuesPositionalsAndNaN) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = gqe::test::scratch_dir("args_train");
  const auto in_dir = gqe::test::RunOptions().in(dir);
  auto r = gqe::test::run_gqe({"train", "--config", "c.json", "--data", "d.txt", "--out", "--threads", "1"}, in_dir);
  EXPECT_TRUE(gqe::test::fails_with(r, "option --out needs a value, got the option '--threads'"));
  EXPECT_NE(::access((dir + "/--threads").c_str(), F_OK), 0) << "a run directory named --threads was made";
  r = gqe::test::run_gqe({"train", "--config", "c.json", "stray", "--out", "o"}, in_dir);
  EXPECT_TRUE(gqe::test::fails_with(r, "unexpected argument 'stray'"));
  r = gqe::test::run_gqe({"train", "--steps", "3", "--config", "c.json", "--steps", "4"}, in_dir);
  EXPECT_TRUE(gqe::test::fails_with(r, "option --steps given twice ('3' and '4')"));
  // Token counts: positive and small enough that their step count fits (1e30 once overflowed to one step).
  const std::string cfg = gqe::test::source_dir() + "/configs/tiny-gqe.json";
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--tokens", "1e30"}, {"--tokens", "-5"}, {"--tokens", "0"}, {"--warmup", "-3"}}) {
    r = gqe::test::run_gqe({"train", "--config", cfg, "--data", "d.txt", "--out", "o", flag, value}, in_dir);
    EXPECT_TRUE(gqe::test::fails_with(r, flag)) << flag << " " << value;
  }
  r = gqe::test::run_gqe({"train", "--config", "c.json", "--data", "d.txt", "--out", "o", "--lr", "nan"}, in_dir);
  EXPECT_TRUE(gqe::test::fails_with(r, "--lr expects a finite number, got 'nan'"));
}

// The experiment driver is the study script now: the old command says where it went.
TEST(ArgsCommands, ExperimentNamesTheStudyThatReplacedIt) {
  GQE_SKIP_WITHOUT_BIN();
  const auto r = gqe::test::run_gqe({"experiment", "--config", "c.json", "--out", "o"});
  EXPECT_TRUE(gqe::test::fails_with(r, "replaced by the study scripts: python3 scripts/study.py", 2));
}

TEST(ArgsCommands, BenchListsTheValidShapesLevelsAndImplementations) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = gqe::test::scratch_dir("args_bench");
  const struct {
    const char *flag, *value, *message;
  } cases[] = {
      {"--levels", "core,blocks", "--levels: unknown prefill level 'blocks' (expected core, layer, block or model)"},
      {"--shapes", "tiny", "--shapes: unknown bench shape 'tiny' (expected paper or small)"},
      {"--implementation", "flash",
       "--implementation: unknown attention implementation 'flash' (expected fast or reference)"},
  };
  for (const auto& c : cases)
    EXPECT_TRUE(gqe::test::fails_with(
        gqe::test::run_gqe({"bench", c.flag, c.value, "--out", "o"}, gqe::test::RunOptions().in(dir)), c.message));
}

TEST(ArgsCommands, TrainAndInfoListTheValidPrecisionsAndDecayShapes) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = gqe::test::scratch_dir("args_train_sets");
  const std::string cfg = gqe::test::source_dir() + "/configs/tiny-gqe.json";
  const gqe::test::Args train = {"train", "--config", cfg, "--data", "d.txt", "--out", "o"};
  const std::pair<gqe::test::Args, const char*> cases[] = {
      {gqe::test::concat(train, {"--precision", "fp16"}),
       "--precision: unknown precision 'fp16' (expected auto, fp32 or bf16)"},
      {gqe::test::concat(train, {"--decay-shape", "exp"}),
       "--decay-shape: unknown decay shape 'exp' (expected linear, cosine or sqrt)"},
      {{"info", "--schedule", "--steps", "40", "--decay-shape", "exp"},
       "--decay-shape: unknown decay shape 'exp' (expected linear, cosine or sqrt)"},
  };
  for (const auto& [command, message] : cases)
    EXPECT_TRUE(gqe::test::fails_with(gqe::test::run_gqe(command, gqe::test::RunOptions().in(dir)), message));
}

TEST(ArgsCommands, GenerateChecksNumbersAndTheContext) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = gqe::test::scratch_dir("args_generate");
  const auto in_dir = gqe::test::RunOptions().in(dir);
  gqe::ModelConfig c = gqe::test::small_config("gqa", 4, 2);
  c.vocab_size = 256;
  c.max_position_embeddings = 16;
  at::manual_seed(1);
  gqe::LanguageModel m(c);
  gqe::save_model_checkpoint(dir + "/ckpt", m);
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{{"--temperature", "nan"},
                                                                                    {"--temperature", "-1"},
                                                                                    {"--top-p", "0"},
                                                                                    {"--top-p", "inf"},
                                                                                    {"--top-k", "-1"},
                                                                                    {"--max-new-tokens", "1.5"}}) {
    const auto r = gqe::test::run_gqe({"generate", "--checkpoint", "ckpt", "--prompt", "hi", flag, value}, in_dir);
    EXPECT_TRUE(gqe::test::fails_with(r, flag + " expects"));
  }
  // Over the 16-token context: an error, not an empty output with exit 0.
  auto r =
      gqe::test::run_gqe({"generate", "--checkpoint", "ckpt", "--greedy", "--prompt", std::string(17, 'a')}, in_dir);
  EXPECT_TRUE(gqe::test::fails_with(r, "the prompt is 17 tokens, longer than the model's context of 16 tokens"));
  // At it: the one token that fits, and a note saying why generation stops there.
  r = gqe::test::run_gqe(
      {"generate", "--checkpoint", "ckpt", "--greedy", "--max-new-tokens", "5", "--prompt", std::string(16, 'a')},
      in_dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("leaves room for 1 new token(s) in the model's context of 16"), std::string::npos) << r.out;
}
