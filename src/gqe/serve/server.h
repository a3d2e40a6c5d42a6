// gqe serve's HTTP side (Debian's cpp-httplib): the OpenAI-compatible endpoints over a Scheduler, the
// run's tokenizer with its stream decoder, stop strings, server-sent events, Prometheus metrics.
//
//   POST /v1/completions       prompt (text or token ids), max_tokens, temperature, top_k, top_p, seed, stop,
//                              n, echo, logprobs, stream
//   POST /v1/chat/completions  messages through chat_prompt()'s template; the same sampling fields
//   GET  /v1/models, /health, /metrics
//
// Every refusal is an OpenAI-style JSON error with a 4xx status; nothing a client sends ends the server.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "gqe/serve/api.h"
#include "gqe/serve/scheduler.h"
#include "gqe/tokenizers/tokenizer.h"

namespace httplib {
class Server;
}

namespace gqe::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;             // 0: any free port (Server::port() tells which)
  std::string model_name;      // what /v1/models lists and requests may name
  std::string api_key;         // non-empty: /v1/* needs "Authorization: Bearer <key>"
  int64_t max_body = 1 << 20;  // bytes; larger bodies get 413
  int io_timeout_s = 10;       // a client that sends or reads slower than this is dropped
  int http_threads = 0;        // 0: max_batch + max_queue + 4 (a streaming request holds its thread)
  SchedulerOptions scheduler;
};

class Server {
 public:
  Server(LanguageModel& model, const Tokenizer& tok, const ServeOptions& opt);
  ~Server();
  // Binds host:port; gqe::Error naming them when that fails. Returns the port.
  int bind();
  // Serves until stop(); call bind() first.
  void listen();
  // Refuses new requests (503), lets the running ones finish for up to `timeout`, cancels the rest, stops
  // listening. Returns how many requests were cancelled.
  int64_t drain(std::chrono::milliseconds timeout);
  void stop();
  int port() const { return port_; }
  Scheduler& scheduler() { return *scheduler_; }
  // The Prometheus text of /metrics.
  std::string metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
  int listen_fd_ = -1;
};

}  // namespace gqe::serve
