// `gqe serve` through the executable: its flag errors, then the official openai client against it
// (openai_client_test.py) and the bounded load test (load_test.py), each on a free loopback port with a
// tiny run trained there. The Python tests need the openai package (scripts/python-requirements.txt) in
// GQE_PYTHON, or in the source tree's .venv-torch/; without it they report themselves skipped.
#include <gtest/gtest.h>

#include <unistd.h>

#include "gqe/io/checkpoint.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {
namespace {

std::string python_with_openai() {
  std::vector<std::string> candidates;
  if (!test::python().empty()) candidates.push_back(test::python());
  candidates.push_back(test::source_dir() + "/.venv-torch/bin/python");
  for (const std::string& py : candidates) {
    if (::access(py.c_str(), X_OK) != 0) continue;
    if (test::run({py, "-c", "import openai"}, test::RunOptions{"", {}, "", 60}).rc == 0) return py;
  }
  return "";
}

TEST(ServeCommand, FlagErrorsAreOneLine) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("serve_flags");
  ModelConfig c = test::small_config("gqa", 4, 2);
  c.vocab_size = 256;
  LanguageModel m(c);
  save_model_checkpoint(dir + "/ckpt", m);
  EXPECT_TRUE(test::fails_with(test::run_gqe({"serve", "--checkpoint", dir + "/ckpt", "--kv-memory", "12Q"}),
                               "gqe serve: error: --kv-memory: '12Q' is not a size"));
  EXPECT_TRUE(test::fails_with(test::run_gqe({"serve", "--checkpoint", dir + "/ckpt", "--port", "70000"}), "--port"));
  EXPECT_TRUE(test::fails_with(test::run_gqe({"serve", "--checkpoint", dir + "/nothing"}), dir + "/nothing"));
  EXPECT_TRUE(test::fails_with(test::run_gqe({"serve", "--checkpoint", dir + "/ckpt", "--host", "203.0.113.7",
                                              "--port", "1"}),
                               "cannot listen on 203.0.113.7:1"));
  EXPECT_EQ(test::run_gqe({"serve", "--help"}).rc, 0);
}

TEST(ServeCommand, OpenaiClient) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string py = python_with_openai();
  if (py.empty()) GTEST_SKIP() << "no Python with the openai package (GQE_PYTHON or .venv-torch/)";
  const std::string work = test::scratch_dir("serve_openai");
  const test::CommandRun r =
      test::run({py, test::source_dir() + "/tests/serve/openai_client_test.py", work}, test::RunOptions{"", {}, "", 600});
  if (r.rc == 77) GTEST_SKIP() << r.out;
  EXPECT_EQ(r.rc, 0) << test::describe(r);
  std::cout << r.out;
}

TEST(ServeCommand, LoadTest32ClientsAnd500Requests) {
  GQE_SKIP_WITHOUT_BIN();
  std::string py = python_with_openai();  // the load test itself needs the standard library only
  if (py.empty() && test::have_program("python3")) py = "python3";
  if (py.empty()) GTEST_SKIP() << "no python3";
  const std::string work = test::scratch_dir("serve_load");
  const test::CommandRun r = test::run({py, test::source_dir() + "/tests/serve/load_test.py", work, "--clients", "32",
                                        "--requests", "500", "--max-tokens", "16", "--deadline", "300"},
                                       test::RunOptions{"", {}, "", 600});
  EXPECT_EQ(r.rc, 0) << test::describe(r);
  std::cout << r.out;
}

}  // namespace
}  // namespace gqe
