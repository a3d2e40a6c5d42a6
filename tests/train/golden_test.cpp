// The golden run, in llm.c's manner: the losses of the first 10 training steps of configs/tiny-gqe.json on
// a fixed text, seed and thread count are pinned, for the fast (CPU kernels) and the reference paths.
// Any change to training numerics fails here and has to update the pinned values on purpose.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gqe/core/fs.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {
namespace {

// 10 steps x 4 sequences x 64 tokens, byte tokens, seed 1234, 1 thread, no validation.
const std::vector<double> kFastLosses = {5.641727448, 5.260390759, 4.769200802, 4.244000435, 3.913829565,
                                         3.595382214, 3.390354395, 3.186980009, 3.060968876, 2.981836557};
const std::vector<double> kReferenceLosses = {5.641727448, 5.260390759, 4.769200325, 4.244000435, 3.913829327,
                                              3.595382214, 3.390354395, 3.186980009, 3.060968876, 2.981836557};

// A fixed, varied text: a linear congruential generator picks words, so every byte position is known.
std::string golden_text() {
  const char* words[] = {"the", "light", "and", "darkness", "waters", "were", "divided", "from", "firmament",
                         "evening", "morning", "day", "said", "God", "let", "there", "be", "heaven", "earth", "seed"};
  uint32_t s = 12345;
  std::string t;
  for (int i = 0; i < 6000; ++i) {
    s = s * 1664525u + 1013904223u;
    t += words[(s >> 16) % 20];
    t += (s >> 8) % 11 == 0 ? ".\n" : " ";
  }
  return t;
}

std::vector<double> train_losses(const std::string& implementation) {
  const std::string dir = test::scratch_dir("golden-" + implementation);
  nlohmann::json cfg = nlohmann::json::parse(fs::read_file(test::source_dir() + "/configs/tiny-gqe.json"));
  cfg["attention"]["implementation"] = implementation;
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  std::ofstream(dir + "/text.txt") << golden_text();
  const test::CommandRun r = test::run_gqe({"train", "--config", dir + "/config.json", "--data", dir + "/text.txt",
                                            "--out", dir + "/run", "--steps", "10", "--batch", "4", "--seq", "64",
                                            "--threads", "1", "--seed", "1234", "--eval-every", "0", "--eval-batches",
                                            "0", "--log-every", "10", "--sample-tokens", "0"});
  if (r.rc != 0) {
    ADD_FAILURE() << test::describe(r);
    return {};
  }
  std::vector<double> losses;
  std::istringstream lines(fs::read_file(dir + "/run/metrics.jsonl"));
  for (std::string l; std::getline(lines, l);) {
    auto j = nlohmann::json::parse(l);
    if (j.value("type", "") == "train") losses.push_back(j.at("loss").get<double>());
  }
  return losses;
}

// The losses are float32 (about 4.8e-7 apart near 5). The instruction set the kernels are compiled for
// (native AVX-512, AVX2, scalar) and the BLAS kernels OpenBLAS picks for the CPU move them by up to two of
// those steps (scripts/check-golden-portability.sh measures it); any change of method or recipe moves them
// by far more. 1e-5 holds the first on every x86 CPU and catches the second.
constexpr double kTolerance = 1e-5;

void check(const std::string& implementation, const std::vector<double>& want) {
  GQE_SKIP_WITHOUT_BIN();
  const std::vector<double> got = train_losses(implementation);
  std::ostringstream printed;
  printed.precision(10);
  for (double v : got) printed << v << ", ";
  ASSERT_EQ(got.size(), want.size()) << implementation << " losses: {" << printed.str() << "}";
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::abs(got[i] - want[i]));
    EXPECT_NEAR(got[i], want[i], kTolerance) << implementation << " step " << i + 1 << "; all: {" << printed.str() << "}";
  }
  // What scripts/check-golden-portability.sh collects from each build and BLAS core type.
  std::cout << "golden " << implementation << ": max |loss - pinned| " << worst << "\n";
}

TEST(GoldenRun, FastPathLossesArePinned) { check("fast", kFastLosses); }
TEST(GoldenRun, ReferencePathLossesArePinned) { check("reference", kReferenceLosses); }

}  // namespace
}  // namespace gqe
