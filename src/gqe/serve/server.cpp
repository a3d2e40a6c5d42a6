#include "gqe/serve/server.h"

#include <httplib.h>

#include <sys/socket.h>

#include <algorithm>
#include <ctime>
#include <random>
#include <sstream>

#include "gqe/core/error.h"
#include "gqe/tokenizers/stream_decoder.h"

namespace gqe::serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  if (e.status == 429 || e.status == 503) res.set_header("Retry-After", "1");
  res.set_content(dump(e.body()), "application/json");
}

std::string random_id(const char* prefix) {
  static std::mutex mu;
  static std::mt19937_64 gen{std::random_device{}()};
  std::lock_guard<std::mutex> lk(mu);
  std::ostringstream s;
  s << prefix << std::hex << gen();
  return s.str();
}

uint64_t random_seed() {
  static std::mutex mu;
  static std::mt19937_64 gen{std::random_device{}()};
  std::lock_guard<std::mutex> lk(mu);
  return gen() >> 1;
}

// One choice's text as its tokens arrive: whole characters only (StreamDecoder), cut at the first stop
// string, and in a stream held back while its end could still become a stop string.
struct ChoiceText {
  ChoiceText(const Tokenizer& tok, const std::vector<std::string>& stop, bool strip_leading)
      : dec(tok), stop(stop), strip_leading(strip_leading) {}
  StreamDecoder dec;
  std::vector<std::string> stop;
  bool strip_leading;
  std::string text;
  size_t sent = 0;
  bool stopped = false;   // a stop string was found: text ends before it
  bool finished = false;  // the scheduler ended the choice and the decoder was flushed

  void add(const std::string& piece) {
    if (stopped) return;
    text += piece;
    if (strip_leading && sent == 0) {
      const size_t first = text.find_first_not_of(' ');
      text.erase(0, first == std::string::npos ? text.size() : first);
    }
    size_t cut = std::string::npos;
    for (const std::string& s : stop) cut = std::min(cut, text.find(s));
    if (cut != std::string::npos) {
      text.resize(cut);
      stopped = true;
    }
  }
  void finish() {
    if (!finished && !stopped) add(dec.finish());
    finished = true;
  }
  // The text not sent yet that is safe to send.
  std::string take() {
    size_t end = text.size();
    if (!stopped && !finished) {
      size_t hold = 0;  // the longest end of the text that begins a stop string
      for (const std::string& s : stop)
        for (size_t n = std::min(s.size() - 1, text.size()); n > hold; --n)
          if (text.compare(text.size() - n, n, s, 0, n) == 0) {
            hold = n;
            break;
          }
      end = text.size() - hold;
    }
    if (end <= sent) return "";
    std::string out = text.substr(sent, end - sent);
    sent = end;
    return out;
  }
};

std::string finish_reason(const ChoiceText& t, const std::string& scheduler_reason) {
  return t.stopped ? "stop" : scheduler_reason;
}

}  // namespace

struct Server::Impl {
  LanguageModel& model;
  const Tokenizer& tok;
  ServeOptions opt;
  ApiLimits limits;
  Scheduler* scheduler = nullptr;
  std::time_t started = std::time(nullptr);
  std::atomic<int64_t> http_requests{0}, http_errors{0};
  std::mutex status_mu;
  std::map<int, int64_t> responses_by_status;

  Impl(LanguageModel& m, const Tokenizer& t, const ServeOptions& o) : model(m), tok(t), opt(o) {
    limits.model_name = opt.model_name;
    limits.context = model.config().max_position_embeddings;
    limits.vocab = tok.vocab_size();
  }

  void authorize(const httplib::Request& req) const {
    if (opt.api_key.empty()) return;
    if (req.get_header_value("Authorization") != "Bearer " + opt.api_key)
      throw ApiError(401, "missing or wrong API key: send the header \"Authorization: Bearer <key>\"",
                     "authentication_error", "", "invalid_api_key");
  }

  // The sequences of a request: its prompt n times, choice i seeded seed + i.
  std::shared_ptr<Request> make_request(const std::vector<int64_t>& prompt, const SamplingRequest& s) const {
    const int64_t context = model.config().max_position_embeddings;
    if (int64_t(prompt.size()) > context)
      throw ApiError(400, "the prompt is " + std::to_string(prompt.size()) + " tokens, longer than the model's context of " +
                              std::to_string(context) + " tokens: shorten it",
                     "invalid_request_error", "prompt", "context_length_exceeded");
    const int64_t room = max_new_tokens_after(model.config(), int64_t(prompt.size()));
    if (s.max_tokens > room)
      throw ApiError(400, "this model's context is " + std::to_string(context) + " tokens; the prompt's " +
                              std::to_string(prompt.size()) + " tokens leave room for " + std::to_string(room) +
                              " new tokens, and max_tokens is " + std::to_string(s.max_tokens) + ": lower it",
                     "invalid_request_error", "max_tokens", "context_length_exceeded");
    const uint64_t seed = s.seed ? *s.seed : random_seed();
    std::vector<SequenceSpec> specs;
    for (int64_t i = 0; i < s.n; ++i) {
      SequenceSpec q;
      q.prompt = prompt;
      q.sampling.max_new_tokens = s.max_tokens;
      q.sampling.temperature = s.temperature;
      q.sampling.top_k = s.top_k;
      q.sampling.top_p = s.top_p;
      q.sampling.seed = seed + uint64_t(i);
      q.sampling.stop_token = tok.eos_id();
      q.sampling.vocab_limit = tok.vocab_size();
      q.logprobs = s.logprobs;
      specs.push_back(std::move(q));
    }
    return std::make_shared<Request>(std::move(specs));
  }

  std::string token_text(int64_t id) const { return tok.decode({id}); }

  json completion_logprobs(const std::vector<TokenOut>& toks, size_t offset) const {
    json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
    for (const TokenOut& t : toks) {
      const std::string s = token_text(t.id);
      tokens.push_back(s);
      lps.push_back(t.logprob);
      json top = json::object();
      for (const auto& [id, lp] : t.top) top[token_text(id)] = lp;
      tops.push_back(top);
      offs.push_back(offset);
      offset += s.size();
    }
    return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
  }

  json chat_logprobs(const std::vector<TokenOut>& toks) const {
    auto entry = [&](int64_t id, double lp) {
      const std::string s = token_text(id);
      json bytes = json::array();
      for (unsigned char c : s) bytes.push_back(int(c));
      return json{{"token", s}, {"logprob", lp}, {"bytes", bytes}};
    };
    json content = json::array();
    for (const TokenOut& t : toks) {
      json e = entry(t.id, t.logprob);
      e["top_logprobs"] = json::array();
      for (const auto& [id, lp] : t.top) e["top_logprobs"].push_back(entry(id, lp));
      content.push_back(e);
    }
    return {{"content", content}};
  }

  // Runs a request to its end, writing its response through `sink`: one JSON object, or (stream) the
  // server-sent events. Returns false when the client is gone (the request is then cancelled).
  bool respond(const std::shared_ptr<Request>& r, bool chat, const SamplingRequest& s, const std::string& echo,
               int64_t prompt_tokens, httplib::DataSink& sink) {
    const size_t n = r->specs.size();
    std::vector<std::string> stop = s.stop;
    if (chat) stop.push_back(kChatTurnStop);
    std::vector<std::unique_ptr<ChoiceText>> text;
    for (size_t i = 0; i < n; ++i) text.push_back(std::make_unique<ChoiceText>(tok, stop, chat));
    std::vector<size_t> seen(n, 0);
    std::vector<std::vector<TokenOut>> all(n);
    std::vector<std::string> reason(n);
    std::vector<bool> reported(n, false), role_sent(n, false);
    const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
    const std::time_t created = std::time(nullptr);
    auto write = [&](const std::string& data) {
      if (!sink.write(data.data(), data.size())) {
        r->cancel();
        return false;
      }
      return true;
    };
    auto event = [&](const json& j) { return write("data: " + dump(j) + "\n\n"); };
    auto chunk = [&](size_t i, const std::string& delta, const std::vector<TokenOut>& toks, const json& fin) {
      json c = {{"index", i}, {"finish_reason", fin}};
      const bool lp = s.logprobs >= 0 && !toks.empty();
      if (chat) {
        json d = json::object();
        if (!role_sent[i]) d["role"] = "assistant", role_sent[i] = true;
        if (!delta.empty()) d["content"] = delta;
        c["delta"] = d;
        c["logprobs"] = lp ? chat_logprobs(toks) : json(nullptr);
      } else {
        c["text"] = delta;
        c["logprobs"] = lp ? completion_logprobs(toks, 0) : json(nullptr);
      }
      return event({{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                    {"model", opt.model_name}, {"choices", json::array({c})}});
    };
    if (s.stream && !echo.empty() && !chunk(0, echo, {}, nullptr)) return false;
    auto last_write = Clock::now();
    for (;;) {
      std::vector<std::vector<TokenOut>> fresh(n);
      std::vector<bool> ended(n, false);
      {
        std::unique_lock<std::mutex> lk(r->mu);
        auto news = [&] {
          for (size_t i = 0; i < n; ++i)
            if (r->choices[i].tokens.size() > seen[i] || (r->choices[i].finished && !reported[i])) return true;
          return false;
        };
        r->cv.wait_for(lk, std::chrono::milliseconds(500), news);
        for (size_t i = 0; i < n; ++i) {
          auto& c = r->choices[i];
          fresh[i].assign(c.tokens.begin() + long(seen[i]), c.tokens.end());
          seen[i] = c.tokens.size();
          ended[i] = c.finished && !reported[i];
          if (ended[i]) reason[i] = c.finish_reason;
        }
      }
      bool wrote = false;
      for (size_t i = 0; i < n; ++i) {
        ChoiceText& t = *text[i];
        const bool was_stopped = t.stopped;
        for (const TokenOut& tk : fresh[i]) t.add(t.dec.push(tk.id));
        if (t.stopped && !was_stopped && !ended[i]) r->stop_choice(i);  // the scheduler ends it at the next step
        if (ended[i]) t.finish();
        all[i].insert(all[i].end(), fresh[i].begin(), fresh[i].end());
        if (!s.stream) {
          if (ended[i]) reported[i] = true;
          continue;
        }
        const std::string delta = t.take();
        if (ended[i]) {
          reported[i] = true;
          if (!chunk(i, delta, fresh[i], finish_reason(t, reason[i]))) return false;
          wrote = true;
        } else if (!delta.empty() || (s.logprobs >= 0 && !fresh[i].empty())) {
          if (!chunk(i, delta, fresh[i], nullptr)) return false;
          wrote = true;
        }
      }
      if (std::all_of(reported.begin(), reported.end(), [](bool b) { return b; })) break;
      // While nothing comes (queued, or a long prefill), a byte now and then finds a client that left: its
      // write fails and the request is cancelled. JSON allows leading whitespace; an SSE line starting with
      // ':' is a comment.
      if (wrote) last_write = Clock::now();
      else if (Clock::now() - last_write > std::chrono::seconds(1)) {
        if (!write(s.stream ? ": waiting\n\n" : " ")) return false;
        last_write = Clock::now();
      }
    }
    int64_t completion_tokens = 0;
    for (auto& a : all) completion_tokens += int64_t(a.size());
    const json usage = {{"prompt_tokens", prompt_tokens},
                        {"completion_tokens", completion_tokens},
                        {"total_tokens", prompt_tokens + completion_tokens}};
    if (s.stream) {
      if (s.include_usage && !event({{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
                                      {"created", created}, {"model", opt.model_name}, {"choices", json::array()},
                                      {"usage", usage}}))
        return false;
      if (!write("data: [DONE]\n\n")) return false;
      sink.done();
      return true;
    }
    json choices = json::array();
    for (size_t i = 0; i < n; ++i) {
      ChoiceText& t = *text[i];
      json c = {{"index", i}, {"finish_reason", finish_reason(t, reason[i])}};
      if (chat) {
        c["message"] = {{"role", "assistant"}, {"content", t.text}};
        c["logprobs"] = s.logprobs >= 0 ? chat_logprobs(all[i]) : json(nullptr);
      } else {
        c["text"] = echo + t.text;
        c["logprobs"] = s.logprobs >= 0 ? completion_logprobs(all[i], echo.size()) : json(nullptr);
      }
      choices.push_back(c);
    }
    const json body = {{"id", id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", created},
                       {"model", opt.model_name}, {"choices", choices}, {"usage", usage}};
    if (!write(dump(body))) return false;
    sink.done();
    return true;
  }

  void generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    authorize(req);
    const json body = parse_json_body(req.body);
    std::vector<int64_t> prompt;
    std::string echo;
    SamplingRequest s;
    if (chat) {
      ChatRequest c = parse_chat_request(body, limits);
      prompt = tok.encode(chat_prompt(c.messages));
      s = c.sampling;
    } else {
      CompletionRequest c = parse_completion_request(body, limits);
      prompt = c.prompt_text ? tok.encode(*c.prompt_text) : c.prompt_ids;
      if (c.echo) echo = c.prompt_text ? *c.prompt_text : tok.decode(c.prompt_ids);
      s = c.sampling;
    }
    if (prompt.empty()) throw ApiError(400, "the prompt encodes to no tokens", "invalid_request_error", "prompt");
    std::shared_ptr<Request> r = make_request(prompt, s);
    scheduler->submit(r);
    const int64_t prompt_tokens = int64_t(prompt.size());
    auto respond_fn = [this, r, chat, s, echo, prompt_tokens](size_t, httplib::DataSink& sink) {
      return respond(r, chat, s, echo, prompt_tokens, sink);
    };
    // The releaser runs when the response ends; unless it was written whole, the client is gone.
    res.set_chunked_content_provider(s.stream ? "text/event-stream" : "application/json", respond_fn,
                                     [r](bool success) {
                                       if (!success) r->cancel();
                                     });
    if (s.stream) res.set_header("Cache-Control", "no-cache");
  }
};

Server::Server(LanguageModel& model, const Tokenizer& tok, const ServeOptions& opt)
    : impl_(std::make_unique<Impl>(model, tok, opt)),
      scheduler_(std::make_unique<Scheduler>(model, opt.scheduler)),
      http_(std::make_unique<httplib::Server>()) {
  impl_->scheduler = scheduler_.get();
  Impl* im = impl_.get();
  httplib::Server& h = *http_;
  const int threads = opt.http_threads > 0 ? opt.http_threads
                                           : int(opt.scheduler.max_batch + opt.scheduler.max_queue + 4);
  h.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  h.set_payload_max_length(size_t(opt.max_body));
  h.set_read_timeout(opt.io_timeout_s, 0);
  h.set_write_timeout(opt.io_timeout_s, 0);
  h.set_keep_alive_timeout(std::min(5, opt.io_timeout_s));
  h.set_keep_alive_max_count(1000);
  h.set_tcp_nodelay(true);
  // The listening socket, kept to deepen its backlog after bind (cpp-httplib listens with a backlog of 5:
  // more clients connecting at once would see their SYN dropped and retried a second later).
  h.set_socket_options([this](int sock) {
    httplib::default_socket_options(sock);
    listen_fd_ = sock;
  });
  // Handlers' refusals are ApiErrors; anything else escaping one is a bug, answered 500 without ending the
  // server.
  auto guarded = [im](std::function<void(const httplib::Request&, httplib::Response&)> f) {
    return [im, f](const httplib::Request& req, httplib::Response& res) {
      ++im->http_requests;
      try {
        f(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"));
      }
    };
  };
  h.Post("/v1/completions", guarded([im](const httplib::Request& q, httplib::Response& r) { im->generate(q, r, false); }));
  h.Post("/v1/chat/completions",
         guarded([im](const httplib::Request& q, httplib::Response& r) { im->generate(q, r, true); }));
  h.Get("/v1/models", guarded([im](const httplib::Request& q, httplib::Response& r) {
          im->authorize(q);
          const json m = {{"id", im->opt.model_name}, {"object", "model"}, {"created", im->started}, {"owned_by", "gqe"},
                          {"max_model_len", im->limits.context}};
          r.set_content(dump({{"object", "list"}, {"data", json::array({m})}}), "application/json");
        }));
  h.Get("/health", guarded([this](const httplib::Request&, httplib::Response& r) {
          const bool draining = scheduler_->draining();
          r.status = draining ? 503 : 200;
          r.set_content(dump({{"status", draining ? "draining" : "ok"}}), "application/json");
        }));
  h.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& r) {
          r.set_content(metrics(), "text/plain; version=0.0.4");
        }));
  h.set_error_handler(httplib::Server::HandlerWithResponse([im](const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard<std::mutex> lk(im->status_mu);
      ++im->responses_by_status[res.status];
    }
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e(res.status, "HTTP " + std::to_string(res.status));
    if (res.status == 404) e = ApiError(404, "no such endpoint: " + req.method + " " + req.path, "invalid_request_error", "", "not_found");
    if (res.status == 413)
      e = ApiError(413, "the request body is larger than the server's limit of " + std::to_string(im->opt.max_body) + " bytes",
                   "invalid_request_error", "", "request_too_large");
    if (res.status == 400) e = ApiError(400, "malformed HTTP request");
    send_error(res, e);
    return httplib::Server::HandlerResponse::Handled;
  }));
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, ApiError(500, "internal error", "server_error"));
  });
}

Server::~Server() {
  if (http_) http_->stop();
}

int Server::bind() {
  const ServeOptions& o = impl_->opt;
  if (o.port == 0) {
    port_ = http_->bind_to_any_port(o.host);
    if (port_ < 0) throw Error("cannot listen on " + o.host + " (any port): check --host");
  } else {
    if (!http_->bind_to_port(o.host, o.port))
      throw Error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                  ": the port is in use or the address is not this machine's (--host, --port)");
    port_ = o.port;
  }
  if (listen_fd_ >= 0) ::listen(listen_fd_, SOMAXCONN);
  return port_;
}

void Server::listen() { http_->listen_after_bind(); }

void Server::stop() { http_->stop(); }

int64_t Server::drain(std::chrono::milliseconds timeout) {
  const int64_t cancelled = scheduler_->drain(timeout);
  // The cancelled requests' responses end at their next wait (half a second at most).
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  http_->stop();
  return cancelled;
}

std::string Server::metrics() const {
  const SchedulerStats s = scheduler_->stats();
  std::ostringstream o;
  auto metric = [&](const char* name, const char* type, const char* help, double value) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n" << name << " " << value << "\n";
  };
  metric("gqe_requests_admitted_total", "counter", "Requests admitted into the batch.", double(s.requests_admitted));
  metric("gqe_requests_rejected_total", "counter", "Requests refused with 429 (queue full).", double(s.requests_rejected));
  metric("gqe_requests_finished_total", "counter", "Requests that ran to their end.", double(s.requests_finished));
  metric("gqe_requests_cancelled_total", "counter", "Requests cancelled (client gone, shutdown).", double(s.requests_cancelled));
  metric("gqe_http_requests_total", "counter", "HTTP requests handled by an endpoint.", double(impl_->http_requests));
  metric("gqe_queue_sequences", "gauge", "Sequences waiting for admission.", double(s.queued));
  metric("gqe_batch_sequences", "gauge", "Sequences in the decode batch.", double(s.running));
  metric("gqe_prefill_sequences", "gauge", "Sequences being prefilled.", double(s.prefilling));
  metric("gqe_prompt_tokens_total", "counter", "Prompt tokens prefilled.", double(s.prompt_tokens));
  metric("gqe_generation_tokens_total", "counter", "Tokens generated.", double(s.generated_tokens));
  metric("gqe_decode_steps_total", "counter", "Batched decode steps.", double(s.decode_steps));
  metric("gqe_decode_seconds_total", "counter", "Time in batched decode steps.", s.decode_seconds);
  metric("gqe_decode_tokens_per_second", "gauge", "Recent decode throughput (tokens/s, all sequences).", s.tokens_per_second);
  metric("gqe_kv_memory_bytes", "gauge", "The KV-cache budget (--kv-memory).", double(s.kv_memory));
  metric("gqe_kv_reserved_bytes", "gauge", "KV memory reserved by admitted requests.", double(s.kv_reserved));
  metric("gqe_kv_used_positions", "gauge", "Cached positions of the admitted sequences.", double(s.kv_used_positions));
  metric("gqe_kv_usage_ratio", "gauge", "Reserved over budget.", s.kv_memory ? double(s.kv_reserved) / double(s.kv_memory) : 0);
  o << "# HELP gqe_http_error_responses_total Responses with a 4xx or 5xx status, by status.\n"
    << "# TYPE gqe_http_error_responses_total counter\n";
  {
    std::lock_guard<std::mutex> lk(impl_->status_mu);
    for (const auto& [status, n] : impl_->responses_by_status)
      o << "gqe_http_error_responses_total{status=\"" << status << "\"} " << n << "\n";
  }
  o << "# HELP gqe_time_to_first_token_seconds From arrival to the first generated token.\n"
    << "# TYPE gqe_time_to_first_token_seconds histogram\n";
  for (size_t i = 0; i < s.ttft_bounds.size(); ++i)
    o << "gqe_time_to_first_token_seconds_bucket{le=\"" << s.ttft_bounds[i] << "\"} " << s.ttft_counts[i] << "\n";
  o << "gqe_time_to_first_token_seconds_bucket{le=\"+Inf\"} " << s.ttft_counts.back() << "\n"
    << "gqe_time_to_first_token_seconds_sum " << s.ttft_sum << "\n"
    << "gqe_time_to_first_token_seconds_count " << s.ttft_count << "\n";
  o << "# HELP gqe_decode_batch_size_steps Decode steps run at each batch size.\n# TYPE gqe_decode_batch_size_steps counter\n";
  for (size_t b = 1; b < s.batch_size_counts.size(); ++b)
    o << "gqe_decode_batch_size_steps{size=\"" << b << "\"} " << s.batch_size_counts[b] << "\n";
  return o.str();
}

}  // namespace gqe::serve
