// gqe serve: an OpenAI-compatible HTTP server over a checkpoint (src/gqe/serve/, docs/serving.md).
#include <csignal>
#include <iostream>
#include <string>
#include <thread>

#include "gqe/cli/args.h"
#include "gqe/cli/commands.h"
#include "gqe/cli/device_option.h"
#include "gqe/core/error.h"
#include "gqe/core/runtime.h"
#include "gqe/io/checkpoint.h"
#include "gqe/serve/api.h"
#include "gqe/tokenizers/run_tokenizer.h"
#ifdef GQE_WITH_HTTPLIB
#include "gqe/serve/server.h"
#endif

namespace gqe::cli {

int cmd_serve(int argc, char** argv) {
  Args args("serve", argc, argv,
            {"checkpoint", "host", "port", "max-batch", "kv-memory", "max-queue", "prefill-chunk", "threads", "api-key",
             "model-name", "max-body", "io-timeout", "drain-timeout", "tokenizer", "device", "dtype"},
            {"help", "allow-nonfinite-weights"});
  if (args.flag("help")) {
    std::cout << "usage: gqe serve --checkpoint DIR [options]   an OpenAI-compatible server (docs/serving.md)\n"
                 "  --host ADDR (127.0.0.1: loopback only)  --port N (8080; 0: any free port)\n"
                 "  --max-batch N (8: sequences decoded together)  --kv-memory SIZE (1G: KV-cache budget, e.g. 512M)\n"
                 "  --max-queue N (64: sequences waiting for admission; beyond it 429)\n"
                 "  --prefill-chunk N (512: prompt tokens prefilled between two decode steps)\n"
                 "  --threads N (all cores)  --api-key KEY (require \"Authorization: Bearer KEY\" on /v1/*)\n"
                 "  --model-name NAME (the checkpoint folder's name)  --max-body BYTES (1M: larger bodies get 413)\n"
                 "  --io-timeout S (10: slower clients are dropped)  --drain-timeout S (30: on SIGTERM/SIGINT,\n"
                 "                  running requests get this long to finish before they are cancelled)\n"
                 "  --tokenizer bytes|PATH (default: the one the checkpoint was trained with)\n"
                 "  --allow-nonfinite-weights (load NaN/Inf weights anyway)\n"
              << device_option_help() << dtype_option_help();
    return 0;
  }
#ifndef GQE_WITH_HTTPLIB
  throw Error("gqe serve: this gqe was built without cpp-httplib (install libcpp-httplib-dev and re-run cmake)");
#else
  const int threads = configure_threads(int(args.get_int("threads", 0, 0)));
  std::string dir = args.require("checkpoint");
  serve::ServeOptions o;
  o.host = args.get("host", "127.0.0.1");
  o.port = int(args.get_int("port", 8080, 0, 65535));
  o.api_key = args.get("api-key", "");
  o.scheduler.max_batch = args.get_int("max-batch", 8, 1, 4096);
  o.scheduler.max_queue = args.get_int("max-queue", 64, 0, 1 << 20);
  o.scheduler.prefill_chunk = args.get_int("prefill-chunk", 512, 1);
  o.scheduler.threads = threads;
  if (args.has("kv-memory")) {
    try {
      o.scheduler.kv_memory = serve::parse_size(args.get("kv-memory", ""));
    } catch (const Error& e) {
      throw Error("gqe serve: --kv-memory: " + std::string(e.what()));
    }
  }
  o.max_body = args.get_int("max-body", 1 << 20, 1024);
  o.io_timeout_s = int(args.get_int("io-timeout", 10, 1, 3600));
  const auto drain_timeout = std::chrono::milliseconds(int64_t(1000 * args.get_double("drain-timeout", 30, 0, 86400)));
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  o.model_name = args.get("model-name", dir.substr(dir.find_last_of('/') + 1));
  if (o.model_name.empty()) throw Error("gqe serve: --model-name must not be empty");

  const c10::Device device = device_option(args, "serve");
  apply_dtype_option(args, device);  // before the model loads and the scheduler sizes its KV budget
  auto model = load_model_checkpoint(dir, WeightLoadOptions{args.flag("allow-nonfinite-weights")});
  model->to(device);
  auto tok = load_run_tokenizer(dir, model->config().vocab_size, args.get("tokenizer", ""));

  // SIGTERM and SIGINT are taken by one thread (sigwait), blocked everywhere else: every thread started
  // below inherits the mask. A write to a client that left must not end the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  serve::Server server(*model, *tok, o);
  const int port = server.bind();
  std::cerr << "gqe serve: model '" << o.model_name << "' (" << model->config().max_position_embeddings
            << "-token context, tokenizer " << tok->name() << ") on http://" << o.host << ":" << port
            << "  max-batch " << o.scheduler.max_batch << ", KV budget " << o.scheduler.kv_memory << " bytes ("
            << o.scheduler.kv_memory / server.scheduler().bytes_per_position() << " positions)\n"
            << std::flush;
  if (o.host != "127.0.0.1" && o.host != "localhost" && o.host != "::1" && o.api_key.empty())
    std::cerr << "gqe serve: note: listening beyond loopback without --api-key: anyone who reaches " << o.host
              << " can use the model\n";
  std::atomic<bool> listening_done{false};
  std::thread waiter([&] {
    const timespec tick{0, 200 * 1000 * 1000};
    while (!listening_done) {
      const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig <= 0) continue;
      std::cerr << "gqe serve: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                << ": draining (no new requests; running ones get " << drain_timeout.count() / 1000.0 << " s)\n"
                << std::flush;
      const int64_t cancelled = server.drain(drain_timeout);
      std::cerr << "gqe serve: stopped (" << cancelled << " request(s) cancelled)\n" << std::flush;
      return;
    }
  });
  server.listen();
  listening_done = true;
  waiter.join();
  return 0;
#endif
}

}  // namespace gqe::cli
