// gqe train: byte-level language-model training on a text file.
#include <fstream>
#include <iostream>
#include <sstream>

#include <ATen/ATen.h>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/model_stats.h"
#include "gqe/core/runtime.h"
#include "gqe/data/tokenizer.h"
#include "gqe/generate/generate.h"
#include "gqe/io/checkpoint.h"
#include "gqe/train/trainer.h"

namespace gqe::cli {

int cmd_train(int argc, char** argv) {
  Args args("train", argc, argv,
            {"config", "data", "out", "steps", "batch", "seq", "lr", "warmup", "weight-decay", "clip", "seed",
             "threads", "log-every", "eval-every", "save-every", "sample-tokens", "sample-prompt"},
            {"help"});
  if (args.flag("help")) {
    std::cout << "usage: gqe train --config CONFIG.json --data TEXT_FILE --out DIR [options]\n"
                 "  --steps N (300)  --batch B (16)  --seq T (128)  --lr X (3e-3)  --warmup N (30)\n"
                 "  --weight-decay X (0.1)  --clip X (1.0)  --seed N (1234)  --threads N (all cores)\n"
                 "  --log-every N (10)  --eval-every N (100)  --save-every N (0: at the end)\n"
                 "  --sample-tokens N (200)  --sample-prompt TEXT (\"And God said\")\n"
                 "Tokens are bytes (vocab_size must be >= 256). Writes DIR/config.json and DIR/model.safetensors.\n";
    return 0;
  }
  const int threads = configure_threads(int(args.get_int("threads", 0)));
  ModelConfig cfg = load_model_config(args.require("config"));
  if (cfg.vocab_size < 256)
    throw ConfigError(args.require("config") + ": field 'vocab_size': byte-level training needs >= 256, got " +
                      std::to_string(cfg.vocab_size));
  const std::string data_path = args.require("data");
  std::ifstream f(data_path, std::ios::binary);
  if (!f) throw Error(data_path + ": cannot open training text");
  std::stringstream ss;
  ss << f.rdbuf();
  std::vector<int64_t> tokens = ByteTokenizer().encode(ss.str());

  TrainOptions o;
  o.steps = args.get_int("steps", o.steps);
  o.batch_size = args.get_int("batch", o.batch_size);
  o.seq_len = args.get_int("seq", o.seq_len);
  o.lr = args.get_double("lr", o.lr);
  o.warmup_steps = args.get_int("warmup", o.warmup_steps);
  o.weight_decay = args.get_double("weight-decay", o.weight_decay);
  o.grad_clip = args.get_double("clip", o.grad_clip);
  o.seed = uint64_t(args.get_int("seed", int64_t(o.seed)));
  o.log_every = std::max<int64_t>(1, args.get_int("log-every", o.log_every));
  o.eval_every = args.get_int("eval-every", o.eval_every);
  o.save_every = args.get_int("save-every", o.save_every);
  o.out_dir = args.require("out");
  if (o.steps <= 0 || o.batch_size <= 0 || o.seq_len <= 0) throw Error("gqe train: --steps, --batch and --seq must be positive");
  if (o.seq_len > cfg.max_position_embeddings)
    throw Error("gqe train: --seq " + std::to_string(o.seq_len) + " exceeds max_position_embeddings " +
                std::to_string(cfg.max_position_embeddings));

  at::manual_seed(o.seed);
  LanguageModel model(cfg);
  const ParamCounts pc = count_parameters(cfg);
  std::cout << "gqe train: " << data_path << " (" << tokens.size() << " byte tokens), " << pc.total()
            << " parameters, attention " << cfg.attention.kind
            << (cfg.attention.is_gqe() ? "/" + cfg.attention.variant : "") << ", active query heads "
            << cfg.attention.active_query_heads() << " of " << cfg.attention.num_heads << "\n"
            << "runtime: " << describe_runtime() << " (" << threads << " threads)\n";
  TrainResult r = train_model(model, tokens, o, std::cout);
  std::cout << "trained " << o.steps << " steps in " << r.seconds << " s: " << r.tokens_per_second
            << " tokens/s; loss " << r.losses.front() << " -> " << r.losses.back() << "; checkpoint in " << o.out_dir
            << "\n";

  const int64_t n_sample = args.get_int("sample-tokens", 200);
  if (n_sample > 0) {
    SamplingOptions s;
    s.max_new_tokens = n_sample;
    s.temperature = 0.8;
    s.top_k = 40;
    s.seed = o.seed;
    const std::string prompt = args.get("sample-prompt", "And God said");
    std::cout << "sample (temperature 0.8, top-k 40):\n" << prompt << std::flush;
    generate(model, ByteTokenizer().encode(prompt), s, [](int64_t t) { std::cout << ByteTokenizer().decode({t}) << std::flush; });
    std::cout << "\n";
  }
  return 0;
}

}  // namespace gqe::cli
