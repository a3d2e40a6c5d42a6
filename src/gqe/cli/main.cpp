// gqe: Grouped Query Experts — define, train, evaluate and run GQE / GQA language models.
#include <cstring>
#include <iostream>
#include <string>

#include "gqe/cli/commands.h"
#include "gqe/core/error.h"
#include "gqe/core/memory.h"
#include "gqe/core/runtime.h"

namespace {
const char* kUsage =
    "usage: gqe <command> [options]\n"
    "\n"
    "commands:\n"
    "  info CONFIG [--context N]     parameters by part, slots, active query heads, attention FLOPs\n"
    "  info --schedule --steps T [...]  the learning-rate schedule's phases gqe train follows (JSON)\n"
    "  env [--threads N]             threads, BLAS library and measured matmul GFLOP/s\n"
    "  train --config C --data F --out DIR [...]   train on a text file (byte-level tokens)\n"
    "  generate --checkpoint DIR --prompt TEXT [...]  sample from a trained model (KV cache)\n"
    "  bench [--lengths 1024,2048,...] [...]  GQA vs GQE prefill/train/decode latency on this machine\n"
    "  tokenizer train --input FILES --out PREFIX [...]  train a SentencePiece BPE tokenizer\n"
    "  tokenizer bench --tokenizer SPEC --input TEXT  encoding speed (MB/s, one thread)\n"
    "  data prepare --input FILES --out DIR [...]  tokenize text/JSONL into train/val token shards\n"
    "  eval --checkpoint DIR --task T --data F [...]  zero-shot hellaswag/arc/piqa as the harness; --val-loss\n"
    "  routes --checkpoint DIR --data F [...]   GQE routing analytics: expert load, entropy, heat map\n"
    "  plot RUN_DIR [...] --out F.png  loss curves of training runs (gnuplot)\n"
    "  export --format hf CHECKPOINT OUT_DIR   a Hugging Face transformers folder (docs/interop.md)\n"
    "  import HF_DIR OUT_CHECKPOINT            such a folder back into a gqe checkpoint\n"
    "  serve --checkpoint DIR [--port 8080]   an OpenAI-compatible HTTP server, continuous batching\n"
    "\n"
    "run `gqe <command> --help` for a command's options.\n";
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  gqe::configure_allocator();
  try {
    if (cmd == "info") return gqe::cli::cmd_info(argc - 2, argv + 2);
    if (cmd == "env") return gqe::cli::cmd_env(argc - 2, argv + 2);
    if (cmd == "train") return gqe::cli::cmd_train(argc - 2, argv + 2);
    if (cmd == "generate") return gqe::cli::cmd_generate(argc - 2, argv + 2);
    if (cmd == "bench") return gqe::cli::cmd_bench(argc - 2, argv + 2);
    if (cmd == "tokenizer") return gqe::cli::cmd_tokenizer(argc - 2, argv + 2);
    if (cmd == "data") return gqe::cli::cmd_data(argc - 2, argv + 2);
    if (cmd == "eval") return gqe::cli::cmd_eval(argc - 2, argv + 2);
    if (cmd == "routes") return gqe::cli::cmd_routes(argc - 2, argv + 2);
    if (cmd == "plot") return gqe::cli::cmd_plot(argc - 2, argv + 2);
    if (cmd == "experiment") {
      // The study scripts replaced it; whoever still types it learns where it went.
      std::cerr << "gqe experiment: replaced by the study scripts: python3 scripts/study.py (the quick form: "
                   "python3 scripts/study.py --quick; scripts/quickstart.sh runs it)\n";
      return 2;
    }
    if (cmd == "export") return gqe::cli::cmd_export(argc - 2, argv + 2);
    if (cmd == "import") return gqe::cli::cmd_import(argc - 2, argv + 2);
    if (cmd == "serve") return gqe::cli::cmd_serve(argc - 2, argv + 2);
    std::cerr << "gqe: unknown command '" << cmd << "'\n\n" << kUsage;
    return 2;
  } catch (const gqe::Error& e) {
    std::string msg = e.what();
    const std::string prefix = "gqe " + cmd + ": ";  // many messages already name the command
    if (msg.rfind(prefix, 0) == 0) msg = msg.substr(prefix.size());
    std::cerr << prefix << "error: " << msg << "\n";
    return 1;
  } catch (const std::exception& e) {
    const std::string oom = gqe::allocation_failure_message(e);  // a resource limit, not a bug
    if (!oom.empty()) {
      std::cerr << "gqe " << cmd << ": error: " << oom << "\n";
      return 1;
    }
    // Every input error is a gqe::Error; anything else escaping a command is a bug, whatever the input.
    std::cerr << "gqe " << cmd << ": internal error: " << e.what()
              << "\nthis is a bug in gqe; please report it with the command line\n";
    return 3;
  }
}
