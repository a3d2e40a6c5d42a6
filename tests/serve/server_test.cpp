// gqe serve's HTTP side in process, on a free loopback port: the endpoints, streaming, stop strings, the
// JSON errors of bad input, the API key, 429 with Retry-After, and a client that leaves mid-stream.
#ifdef GQE_WITH_HTTPLIB
#include "gqe/serve/server.h"

#include <httplib.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "test_util.h"

namespace gqe::serve {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Bytes below 128 only: every text the model can produce is valid UTF-8, so texts compare byte for byte.
struct AsciiTokenizer : ByteTokenizer {
  int64_t vocab_size() const override { return 128; }
};

struct Running {
  std::shared_ptr<LanguageModel> model;
  AsciiTokenizer tok;
  std::unique_ptr<Server> server;
  std::thread thread;
  explicit Running(ServeOptions o = {}) {
    at::manual_seed(3);
    ModelConfig c = test::small_config("gqe", 8, 4, 1);
    c.vocab_size = 256;
    c.max_position_embeddings = 128;
    model = std::make_shared<LanguageModel>(c);
    test::randomise_routers(*model);
    o.port = 0;
    o.model_name = "tiny";
    o.scheduler.threads = 1;
    server = std::make_unique<Server>(*model, tok, o);
    server->bind();
    thread = std::thread([this] { server->listen(); });
  }
  ~Running() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server->port());
    c.set_read_timeout(60, 0);
    return c;
  }
};

json post(const Running& r, const std::string& path, const std::string& body, int* status,
          httplib::Headers headers = {}) {
  auto c = r.client();
  auto res = c.Post(path.c_str(), headers, body, "application/json");
  if (!res) {
    *status = -1;
    return {};
  }
  *status = res->status;
  return json::parse(res->body);
}

// The data: payloads of a server-sent event stream.
std::vector<std::string> events(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

TEST(ServeHttp, CompletionsStreamingAndStop) {
  Running r;
  int st = 0;
  json a = post(r, "/v1/completions", R"({"prompt": "In the", "max_tokens": 12, "temperature": 0})", &st);
  ASSERT_EQ(st, 200) << a.dump();
  const std::string text = a["choices"][0]["text"];
  EXPECT_EQ(a["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(a["usage"]["completion_tokens"], 12);
  EXPECT_EQ(a["usage"]["prompt_tokens"], 6);
  EXPECT_EQ(a["model"], "tiny");
  // The same as generate() (bytes tokenizer: the text's bytes are the tokens).
  SamplingOptions g;
  g.temperature = 0;
  g.max_new_tokens = 12;
  g.vocab_limit = 128;
  const std::vector<int64_t> want = generate(*r.model, ByteTokenizer().encode("In the"), g);
  EXPECT_EQ(ByteTokenizer().encode(text), want);
  // Streamed: the same text in pieces, then [DONE].
  auto c = r.client();
  auto res = c.Post("/v1/completions", R"({"prompt": "In the", "max_tokens": 12, "temperature": 0, "stream": true,
                                           "stream_options": {"include_usage": true}})",
                    "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  const auto ev = events(res->body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string joined;
  std::string finish;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    const json j = json::parse(ev[i]);
    if (j["choices"].empty()) {
      EXPECT_EQ(j["usage"]["completion_tokens"], 12);
      continue;
    }
    joined += j["choices"][0]["text"].get<std::string>();
    if (!j["choices"][0]["finish_reason"].is_null()) finish = j["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(joined, text);
  EXPECT_EQ(finish, "length");
  // A stop string inside the greedy text cuts it there.
  if (text.size() > 4) {
    const std::string stop = text.substr(3, 2);
    json s = post(r, "/v1/completions",
                  json{{"prompt", "In the"}, {"max_tokens", 12}, {"temperature", 0}, {"stop", stop}, {"echo", true}}.dump(), &st);
    ASSERT_EQ(st, 200);
    const std::string cut = text.substr(0, text.find(stop));
    EXPECT_EQ(s["choices"][0]["text"], "In the" + cut);
    EXPECT_EQ(s["choices"][0]["finish_reason"], "stop");
  }
  // n choices with logprobs.
  json n = post(r, "/v1/completions", R"({"prompt": [1, 2, 3], "max_tokens": 3, "n": 2, "seed": 5, "logprobs": 2})", &st);
  ASSERT_EQ(st, 200) << n.dump();
  ASSERT_EQ(n["choices"].size(), 2u);
  EXPECT_EQ(n["choices"][1]["logprobs"]["token_logprobs"].size(), 3u);
  EXPECT_EQ(n["choices"][1]["logprobs"]["top_logprobs"][0].size(), 2u);
}

TEST(ServeHttp, ChatModelsHealthMetrics) {
  Running r;
  int st = 0;
  json a = post(r, "/v1/chat/completions",
                R"({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "seed": 1})", &st);
  ASSERT_EQ(st, 200) << a.dump();
  EXPECT_EQ(a["object"], "chat.completion");
  EXPECT_EQ(a["choices"][0]["message"]["role"], "assistant");
  auto c = r.client();
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(json::parse(m->body)["data"][0]["id"], "tiny");
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto met = c.Get("/metrics");
  ASSERT_TRUE(met);
  for (const char* name : {"gqe_requests_admitted_total 1", "gqe_queue_sequences", "gqe_batch_sequences",
                           "gqe_decode_tokens_per_second", "gqe_time_to_first_token_seconds_count 1",
                           "gqe_kv_reserved_bytes 0"})
    EXPECT_NE(met->body.find(name), std::string::npos) << name << "\n" << met->body;
}

TEST(ServeHttp, BadInputGetsJsonErrorsAndTheServerStaysUp) {
  ServeOptions o;
  o.max_body = 4096;
  Running r(o);
  struct Case {
    std::string path, body;
    int status;
    std::string text;
  };
  const std::vector<Case> cases = {
      {"/v1/completions", "{\"prompt\": ", 400, "not valid JSON"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": "many"})", 400, "not an integer"},
      {"/v1/completions", R"({"prompt": "x", "mystery": 1})", 400, "mystery"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 500})", 400, "outside 1..128"},
      {"/v1/completions", R"({"prompt": "xy", "max_tokens": 128})", 400, "leave room for 127"},
      {"/v1/completions", json{{"prompt", std::string(200, 'a')}}.dump(), 400, "longer than the model's context"},
      {"/v1/completions", R"({"prompt": "x", "model": "gpt-9"})", 404, "does not exist"},
      {"/v1/completions", "{\"prompt\": \"" + std::string(5000, 'a') + "\"}", 413, "larger than"},
      {"/v1/chat/completions", R"({"messages": "hi"})", 400, "messages"},
      {"/v1/nothing", "{}", 404, "no such endpoint"},
  };
  for (const Case& c : cases) {
    int st = 0;
    const json e = post(r, c.path, c.body, &st);
    EXPECT_EQ(st, c.status) << c.body.substr(0, 80) << " -> " << e.dump();
    ASSERT_TRUE(e.contains("error")) << e.dump();
    EXPECT_NE(e["error"]["message"].get<std::string>().find(c.text), std::string::npos) << e.dump();
    EXPECT_TRUE(e["error"].contains("type") && e["error"].contains("param") && e["error"].contains("code"));
  }
  int st = 0;
  post(r, "/v1/completions", R"({"prompt": "ok", "max_tokens": 2})", &st);
  EXPECT_EQ(st, 200);
  const std::string m = r.server->metrics();
  EXPECT_NE(m.find("gqe_http_error_responses_total{status=\"400\"} 7"), std::string::npos) << m;
  EXPECT_NE(m.find("gqe_http_error_responses_total{status=\"404\"} 2"), std::string::npos) << m;
}

TEST(ServeHttp, ApiKeyAndRetryAfter) {
  ServeOptions o;
  o.api_key = "sekret";
  o.scheduler.max_batch = 1;
  o.scheduler.max_queue = 0;
  Running r(o);
  int st = 0;
  json e = post(r, "/v1/completions", R"({"prompt": "x"})", &st);
  EXPECT_EQ(st, 401);
  EXPECT_EQ(e["error"]["code"], "invalid_api_key");
  const httplib::Headers auth = {{"Authorization", "Bearer sekret"}};
  // Requests at once on a batch of one without a queue: those that find it busy get 429 and Retry-After.
  std::atomic<int> ok{0}, busy{0};
  for (int round = 0; round < 20 && busy == 0; ++round) {
    std::vector<std::thread> clients;
    for (int i = 0; i < 6; ++i)
      clients.emplace_back([&] {
        auto c = r.client();
        auto res = c.Post("/v1/completions", auth, R"({"prompt": "y", "max_tokens": 60})", "application/json");
        if (!res) return;
        if (res->status == 200) ++ok;
        if (res->status == 429) {
          ++busy;
          EXPECT_EQ(res->get_header_value("Retry-After"), "1");
          EXPECT_EQ(json::parse(res->body)["error"]["code"], "rate_limit_exceeded");
        }
      });
    for (auto& t : clients) t.join();
  }
  EXPECT_GT(ok, 0);
  const bool saw_429 = busy > 0;
  EXPECT_TRUE(saw_429);
}

TEST(ServeHttp, AClientThatLeavesFreesItsSlot) {
  ServeOptions o;
  o.scheduler.max_batch = 1;
  Running r(o);
  auto c = r.client();
  size_t got = 0;
  // A stream abandoned after its first event.
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = R"({"prompt": "x", "max_tokens": 120, "temperature": 0, "stream": true})";
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t n, uint64_t, uint64_t) {
    got += n;
    return false;  // hang up
  };
  httplib::Response resp;
  httplib::Error err;
  c.send(req, resp, err);
  EXPECT_GT(got, 0u);
  // The abandoned request is cancelled at a following step, and the slot serves the next request.
  int st = 0;
  post(r, "/v1/completions", R"({"prompt": "z", "max_tokens": 2})", &st);
  EXPECT_EQ(st, 200);
  bool cancelled = false;
  for (int i = 0; i < 100 && !cancelled; ++i) {
    cancelled = r.server->scheduler().stats().requests_cancelled >= 1;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(cancelled);
}

TEST(ServeHttp, ASlowClientIsDroppedAndOthersAreServed) {
  ServeOptions o;
  o.io_timeout_s = 1;
  Running r(o);
  // Half a request, then silence: the server closes the connection after the I/O timeout.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(r.server->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string half = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\": ";
  ASSERT_EQ(::send(fd, half.data(), half.size(), 0), ssize_t(half.size()));
  int st = 0;
  post(r, "/v1/completions", R"({"prompt": "meanwhile", "max_tokens": 2})", &st);
  EXPECT_EQ(st, 200);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[512];
  const auto t0 = std::chrono::steady_clock::now();
  ssize_t n = 0;
  std::string got;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, size_t(n));
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(n, 0) << "the connection was not closed";
  EXPECT_LT(waited, 4.0);
  if (!got.empty()) EXPECT_EQ(got.rfind("HTTP/1.1 4", 0), 0u) << got;
  ::close(fd);
  post(r, "/v1/completions", R"({"prompt": "after", "max_tokens": 2})", &st);
  EXPECT_EQ(st, 200);
}

}  // namespace
}  // namespace gqe::serve
#endif
