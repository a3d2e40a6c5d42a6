// gqe generate: sample from a checkpoint with the KV cache.
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gqe/cli/args.h"
#include "gqe/cli/device_option.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/runtime.h"
#include "gqe/tokenizers/run_tokenizer.h"
#include "gqe/tokenizers/stream_decoder.h"
#include "gqe/generate/generate.h"
#include "gqe/io/checkpoint.h"

namespace gqe::cli {
namespace {

// --prompts FILE: every non-empty line a prompt, all generated as one batch (generate_batch), one JSON line
// per prompt on stdout (the text with invalid UTF-8 replaced, and the token ids, which are exact). Every
// prompt is checked against the context before any generation starts.
int generate_prompts_file(LanguageModel& model, const Tokenizer& tok, const std::string& path,
                          const SamplingOptions& s) {
  const std::string text = fs::read_file(path);
  std::vector<std::string> prompts;
  std::vector<std::vector<int64_t>> ids;
  size_t line_no = 0, pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    ids.push_back(tok.encode(line));
    if (max_new_tokens_after(model.config(), int64_t(ids.back().size())) < 1)
      throw Error(path + ": line " + std::to_string(line_no) + ": the prompt is " +
                  std::to_string(ids.back().size()) + " tokens, longer than the model's context of " +
                  std::to_string(model.config().max_position_embeddings) + " tokens: shorten it");
    prompts.push_back(line);
  }
  if (prompts.empty()) throw Error(path + ": no prompts (expected one per line; every line is empty)");
  const std::vector<std::vector<int64_t>> out = generate_batch(model, ids, s);
  for (size_t i = 0; i < prompts.size(); ++i) {
    nlohmann::json j = {{"prompt", prompts[i]}, {"completion", tok.decode(out[i])}, {"tokens", out[i]}};
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  std::cout << std::flush;
  return 0;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  Args args("generate", argc, argv,
            {"checkpoint", "prompt", "prompts", "max-new-tokens", "temperature", "top-k", "top-p", "seed", "threads",
             "tokenizer", "device", "dtype"},
            {"help", "greedy", "print-tokens", "allow-nonfinite-weights"});
  if (args.flag("help")) {
    std::cout << "usage: gqe generate --checkpoint DIR (--prompt TEXT | --prompts FILE) [options]\n"
                 "  --prompts FILE  one prompt per line (empty lines skipped), generated together as one batch;\n"
                 "                  prints one JSON object per prompt and line: {\"prompt\": TEXT, \"completion\": TEXT,\n"
                 "                  \"tokens\": [generated token ids]} (bytes that are not UTF-8 become U+FFFD)\n"
                 "  --max-new-tokens N (200)  --temperature X (0.8)  --top-k N (40; 0 = off)\n"
                 "  --top-p X (1.0 = off)  --greedy  --seed N (0)  --threads N (all cores)\n"
                 "  --tokenizer bytes|PATH (default: the one the checkpoint was trained with)\n"
                 "  --print-tokens (the prompt's and the generated token ids on stderr)\n"
                 "  --allow-nonfinite-weights (load NaN/Inf weights anyway)\n"
              << device_option_help() << dtype_option_help();
    return 0;
  }
  configure_threads(int(args.get_int("threads", 0)));
  const std::string dir = args.require("checkpoint");
  const c10::Device device = device_option(args, "generate");
  apply_dtype_option(args, device);  // before the model loads: a refusal costs nothing
  auto model = load_model_checkpoint(dir, WeightLoadOptions{args.flag("allow-nonfinite-weights")});
  model->to(device);
  auto tok = load_run_tokenizer(dir, model->config().vocab_size, args.get("tokenizer", ""));
  SamplingOptions s;
  s.max_new_tokens = args.get_int("max-new-tokens", 200, 0);
  s.temperature = args.flag("greedy") ? 0.0 : args.get_double("temperature", 0.8, 0.0);
  s.top_k = args.get_int("top-k", 40, 0);
  s.top_p = args.get_positive_double("top-p", 1.0, 1.0);
  s.seed = uint64_t(args.get_int("seed", 0));
  s.vocab_limit = tok->vocab_size();
  if (args.has("prompts")) {
    if (args.has("prompt")) throw Error("gqe generate: give --prompt or --prompts, not both");
    return generate_prompts_file(*model, *tok, args.get("prompts", ""), s);
  }
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
