// gqe generate: sample from a checkpoint with the KV cache.
#include <iostream>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/runtime.h"
#include "gqe/data/tokenizer.h"
#include "gqe/generate/generate.h"
#include "gqe/io/checkpoint.h"

namespace gqe::cli {

int cmd_generate(int argc, char** argv) {
  Args args("generate", argc, argv,
            {"checkpoint", "prompt", "max-new-tokens", "temperature", "top-k", "top-p", "seed", "threads"},
            {"help", "greedy", "allow-nonfinite-weights"});
  if (args.flag("help")) {
    std::cout << "usage: gqe generate --checkpoint DIR --prompt TEXT [options]\n"
                 "  --max-new-tokens N (200)  --temperature X (0.8)  --top-k N (40; 0 = off)\n"
                 "  --top-p X (1.0 = off)  --greedy  --seed N (0)  --threads N (all cores)\n"
                 "  --allow-nonfinite-weights (load NaN/Inf weights anyway)\n";
    return 0;
  }
  configure_threads(int(args.get_int("threads", 0)));
  auto model = load_model_checkpoint(args.require("checkpoint"), WeightLoadOptions{args.flag("allow-nonfinite-weights")});
  SamplingOptions s;
  s.max_new_tokens = args.get_int("max-new-tokens", 200, 0);
  s.temperature = args.flag("greedy") ? 0.0 : args.get_double("temperature", 0.8, 0.0);
  s.top_k = args.get_int("top-k", 40, 0);
  s.top_p = args.get_positive_double("top-p", 1.0, 1.0);
  s.seed = uint64_t(args.get_int("seed", 0));
  const std::string prompt = args.require("prompt");
  if (prompt.empty()) throw Error("gqe generate: --prompt must not be empty");
  const std::vector<int64_t> tokens = ByteTokenizer().encode(prompt);
  // A prompt longer than the context is generate()'s error; one that fills it stops generation early.
  const int64_t room = max_new_tokens_after(model->config(), int64_t(tokens.size()));
  const int64_t context = model->config().max_position_embeddings;
  if (room >= 1 && s.max_new_tokens > room)
    std::cerr << "gqe generate: note: a " << tokens.size() << "-token prompt leaves room for " << room
              << " new token(s) in the model's context of " << context << "; stopping there, not at --max-new-tokens "
              << s.max_new_tokens << "\n";
  std::cout << prompt << std::flush;
  generate(*model, tokens, s, [](int64_t t) { std::cout << ByteTokenizer().decode({t}) << std::flush; });
  std::cout << "\n";
  return 0;
}

}  // namespace gqe::cli
