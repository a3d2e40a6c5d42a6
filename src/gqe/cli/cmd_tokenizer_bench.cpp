// gqe tokenizer bench: encoding speed of a tokenizer on a text file, one thread. The counterpart for
// Hugging Face `tokenizers` on the same text is scripts/bench-tokenizer.py.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/tokenizers/run_tokenizer.h"

namespace gqe::cli {

namespace {
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
}  // namespace

int cmd_tokenizer_bench(int argc, char** argv) {
  Args args("tokenizer bench", argc, argv, {"tokenizer", "input", "repeat"}, {"help"});
  if (args.flag("help")) {
    std::cout << "usage: gqe tokenizer bench --tokenizer SPEC --input TEXT_FILE [--repeat N (3)]\n"
                 "Encodes the whole file on one thread: the first pass (cold caches), then N more; prints MB/s\n"
                 "by wall clock and by the thread's CPU time (which a busy machine disturbs less).\n";
    return 0;
  }
  const std::string spec = args.require("tokenizer"), input = args.require("input");
  const int64_t repeat = args.get_int("repeat", 3);
  if (repeat < 1) throw Error("gqe tokenizer bench: --repeat must be >= 1");
  const auto tok = load_tokenizer(spec);
  const std::string text = fs::read_file(input);
  if (text.empty()) throw Error(input + ": empty file");
  const double mb = double(text.size()) / 1e6;
  size_t n_tokens = 0;
  auto pass = [&](double* wall, double* cpu) {
    const double c0 = thread_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    n_tokens = tok->encode(text).size();
    *wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    *cpu = thread_cpu_seconds() - c0;
  };
  double cold_wall = 0, cold_cpu = 0, best_wall = 1e30, best_cpu = 1e30;
  pass(&cold_wall, &cold_cpu);
  for (int64_t i = 0; i < repeat; ++i) {
    double w = 0, c = 0;
    pass(&w, &c);
    best_wall = std::min(best_wall, w);
    best_cpu = std::min(best_cpu, c);
  }
  std::cout << "gqe tokenizer bench: " << tok->name() << " on " << input << " (" << mb << " MB, " << n_tokens
            << " tokens, " << double(text.size()) / double(std::max<size_t>(n_tokens, 1)) << " bytes/token)\n"
            << "first pass: " << mb / cold_wall << " MB/s wall, " << mb / cold_cpu << " MB/s CPU\n"
            << "best of " << repeat << ": " << mb / best_wall << " MB/s wall, " << mb / best_cpu << " MB/s CPU\n";
  return 0;
}

}  // namespace gqe::cli
