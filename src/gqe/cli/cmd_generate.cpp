// gqe generate: sample from a checkpoint with the KV cache.
#include <iostream>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/runtime.h"
#include "gqe/data/run_tokenizer.h"
#include "gqe/data/stream_decoder.h"
#include "gqe/generate/generate.h"
#include "gqe/io/checkpoint.h"

namespace gqe::cli {

int cmd_generate(int argc, char** argv) {
  Args args("generate", argc, argv,
            {"checkpoint", "prompt", "max-new-tokens", "temperature", "top-k", "top-p", "seed", "threads", "tokenizer"},
            {"help", "greedy", "print-tokens", "allow-nonfinite-weights"});
  if (args.flag("help")) {
    std::cout << "usage: gqe generate --checkpoint DIR --prompt TEXT [options]\n"
                 "  --max-new-tokens N (200)  --temperature X (0.8)  --top-k N (40; 0 = off)\n"
                 "  --top-p X (1.0 = off)  --greedy  --seed N (0)  --threads N (all cores)\n"
                 "  --tokenizer bytes|PATH (default: the one the checkpoint was trained with)\n"
                 "  --print-tokens (the prompt's and the generated token ids on stderr)\n"
                 "  --allow-nonfinite-weights (load NaN/Inf weights anyway)\n";
    return 0;
  }
  configure_threads(int(args.get_int("threads", 0)));
  const std::string dir = args.require("checkpoint");
  auto model = load_model_checkpoint(dir, WeightLoadOptions{args.flag("allow-nonfinite-weights")});
  auto tok = load_run_tokenizer(dir, model->config().vocab_size, args.get("tokenizer", ""));
  SamplingOptions s;
  s.max_new_tokens = args.get_int("max-new-tokens", 200, 0);
  s.temperature = args.flag("greedy") ? 0.0 : args.get_double("temperature", 0.8, 0.0);
  s.top_k = args.get_int("top-k", 40, 0);
  s.top_p = args.get_positive_double("top-p", 1.0, 1.0);
  s.seed = uint64_t(args.get_int("seed", 0));
  s.vocab_limit = tok->vocab_size();
  const std::string prompt = args.require("prompt");
  if (prompt.empty()) throw Error("gqe generate: --prompt must not be empty");
  const std::vector<int64_t> prompt_ids = tok->encode(prompt);
  // A prompt longer than the context is generate()'s error; one that fills it stops generation early.
  const int64_t room = max_new_tokens_after(model->config(), int64_t(prompt_ids.size()));
  const int64_t context = model->config().max_position_embeddings;
  if (room >= 1 && s.max_new_tokens > room)
    std::cerr << "gqe generate: note: a " << prompt_ids.size() << "-token prompt leaves room for " << room
              << " new token(s) in the model's context of " << context << "; stopping there, not at --max-new-tokens "
              << s.max_new_tokens << "\n";
  auto print_ids = [](const char* what, const std::vector<int64_t>& ids) {
    std::cerr << what << ":";
    for (int64_t t : ids) std::cerr << " " << t;
    std::cerr << "\n";
  };
  if (args.flag("print-tokens")) print_ids("prompt tokens", prompt_ids);
  std::cout << prompt << std::flush;
  StreamDecoder text(*tok);
  std::vector<int64_t> generated;
  generate(*model, prompt_ids, s, [&](int64_t t) {
    generated.push_back(t);
    std::cout << text.push(t) << std::flush;
  });
  std::cout << text.finish() << "\n";
  if (args.flag("print-tokens")) print_ids("generated tokens", generated);
  return 0;
}

}  // namespace gqe::cli
