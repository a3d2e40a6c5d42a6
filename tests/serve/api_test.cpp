// Request bodies of gqe serve: what is accepted, with which defaults, and the error every refusal names.
#include "gqe/serve/api.h"

#include <gtest/gtest.h>

#include "gqe/core/error.h"

namespace gqe::serve {
namespace {

using nlohmann::json;

ApiLimits limits() {
  ApiLimits l;
  l.model_name = "tiny";
  l.context = 64;
  l.vocab = 256;
  return l;
}

// The ApiError a parse throws (status 0 when none).
ApiError error_of(const json& body, bool chat = false) {
  try {
    if (chat) parse_chat_request(body, limits());
    else parse_completion_request(body, limits());
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "");
}

TEST(ServeApi, CompletionDefaultsAndPromptForms) {
  CompletionRequest r = parse_completion_request(json{{"prompt", "hi"}}, limits());
  EXPECT_EQ(*r.prompt_text, "hi");
  EXPECT_EQ(r.sampling.max_tokens, 16);
  EXPECT_EQ(r.sampling.temperature, 1.0);
  EXPECT_EQ(r.sampling.n, 1);
  EXPECT_FALSE(r.sampling.seed.has_value());
  EXPECT_EQ(r.sampling.logprobs, -1);
  r = parse_completion_request(json{{"prompt", {1, 2, 3}}, {"max_tokens", 4.0}, {"seed", 7}, {"stop", "\n"},
                                    {"model", "tiny"}, {"echo", true}, {"logprobs", 2}, {"top_k", 5}},
                               limits());
  EXPECT_FALSE(r.prompt_text.has_value());
  EXPECT_EQ(r.prompt_ids, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(r.sampling.max_tokens, 4);
  EXPECT_EQ(*r.sampling.seed, 7u);
  EXPECT_EQ(r.sampling.stop, std::vector<std::string>{"\n"});
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.sampling.logprobs, 2);
  EXPECT_EQ(r.sampling.top_k, 5);
  r = parse_completion_request(json{{"prompt", {"one"}}}, limits());
  EXPECT_EQ(*r.prompt_text, "one");
  r = parse_completion_request(json{{"prompt", {{4, 5}}}}, limits());
  EXPECT_EQ(r.prompt_ids, (std::vector<int64_t>{4, 5}));
  // The neutral values of fields gqe does not implement are accepted.
  r = parse_completion_request(json{{"prompt", "x"}, {"presence_penalty", 0}, {"best_of", 1}, {"user", "u"},
                                    {"logit_bias", json::object()}, {"stream", true},
                                    {"stream_options", {{"include_usage", true}}}},
                               limits());
  EXPECT_TRUE(r.sampling.stream);
  EXPECT_TRUE(r.sampling.include_usage);
}

TEST(ServeApi, RefusalsNameTheField) {
  struct Case {
    json body;
    int status;
    std::string param, text;
  };
  const std::vector<Case> cases = {
      {json::array({1}), 400, "", "not a JSON object"},
      {json{{"max_tokens", 3}}, 400, "prompt", "missing"},
      {json{{"prompt", 5}}, 400, "prompt", "an integer is not a string"},
      {json{{"prompt", ""}}, 400, "prompt", "must not be empty"},
      {json{{"prompt", {"a", "b"}}}, 400, "prompt", "one prompt per request"},
      {json{{"prompt", {1, 300}}}, 400, "prompt[1]", "300 is outside 0..255"},
      {json{{"prompt", {1, "x"}}}, 400, "prompt[1]", "a string is not an integer"},
      {json{{"prompt", "a"}, {"max_tokens", "8"}}, 400, "max_tokens", "a string is not an integer"},
      {json{{"prompt", "a"}, {"max_tokens", 0}}, 400, "max_tokens", "outside 1..64"},
      {json{{"prompt", "a"}, {"max_tokens", 65}}, 400, "max_tokens", "outside 1..64"},
      {json{{"prompt", "a"}, {"max_tokens", 1.5}}, 400, "max_tokens", "not an integer"},
      {json{{"prompt", "a"}, {"temperature", -1}}, 400, "temperature", "outside"},
      {json{{"prompt", "a"}, {"temperature", "hot"}}, 400, "temperature", "a string is not a number"},
      {json{{"prompt", "a"}, {"top_p", 0}}, 400, "top_p", "greater than 0"},
      {json{{"prompt", "a"}, {"n", 9}}, 400, "n", "outside 1..8"},
      {json{{"prompt", "a"}, {"stream", "yes"}}, 400, "stream", "not a boolean"},
      {json{{"prompt", "a"}, {"stop", {"a", ""}}}, 400, "stop", "must not be empty"},
      {json{{"prompt", "a"}, {"stop", {"1", "2", "3", "4", "5"}}}, 400, "stop", "at most 4"},
      {json{{"prompt", "a"}, {"seed", -1}}, 400, "seed", "outside"},
      {json{{"prompt", "a"}, {"logprobs", 6}}, 400, "logprobs", "outside 0..5"},
      {json{{"prompt", "a"}, {"frequency_penalty", 0.5}}, 400, "frequency_penalty", "supports only 0"},
      {json{{"prompt", "a"}, {"best_of", 2}}, 400, "best_of", "supports only 1"},
      {json{{"prompt", "a"}, {"stream_options", {{"include_usage", true}}}}, 400, "stream_options", "only allowed"},
      {json{{"prompt", "a"}, {"temperatur", 0}}, 400, "temperatur", "unrecognized request argument supplied: temperatur"},
      {json{{"prompt", "a"}, {"model", "gpt-4"}}, 404, "model", "'gpt-4' does not exist"},
      {json{{"prompt", "a"}, {"model", 3}}, 400, "model", "not a string"},
  };
  for (const Case& c : cases) {
    const ApiError e = error_of(c.body);
    EXPECT_EQ(e.status, c.status) << c.body.dump();
    EXPECT_EQ(e.param, c.param) << c.body.dump();
    EXPECT_NE(e.message.find(c.text), std::string::npos) << c.body.dump() << ": " << e.message;
    const json b = e.body();
    EXPECT_TRUE(b["error"].contains("message") && b["error"].contains("type") && b["error"].contains("param") &&
                b["error"].contains("code"));
  }
}

TEST(ServeApi, ChatMessagesAndTemplate) {
  ChatRequest r = parse_chat_request(
      json{{"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}},
           {"max_completion_tokens", 5}, {"logprobs", true}, {"top_logprobs", 2}},
      limits());
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.sampling.max_tokens, 5);
  EXPECT_EQ(r.sampling.logprobs, 2);
  EXPECT_EQ(chat_prompt(r.messages), "System: Be brief.\nUser: Hi\nAssistant:");
  EXPECT_EQ(error_of(json{{"messages", json::array()}}, true).param, "messages");
  EXPECT_EQ(error_of(json{{"messages", {{{"role", "robot"}, {"content", "x"}}}}}, true).param, "messages[0].role");
  EXPECT_EQ(error_of(json{{"messages", {{{"role", "user"}}}}}, true).param, "messages[0].content");
  EXPECT_EQ(error_of(json{{"messages", {{{"role", "user"}, {"content", 1}}}}}, true).param, "messages[0].content");
  EXPECT_EQ(error_of(json{{"messages", {{{"role", "user"}, {"content", "x"}, {"tool_calls", 1}}}}}, true).param,
            "messages[0].tool_calls");
  EXPECT_EQ(error_of(json{{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"top_logprobs", 2}}, true).param,
            "top_logprobs");
  EXPECT_EQ(error_of(json{{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"tools", json::array()}}, true).param,
            "tools");
}

TEST(ServeApi, JsonBodyAndSizes) {
  EXPECT_EQ(parse_json_body("{\"a\": 1}")["a"], 1);
  try {
    parse_json_body("{\"a\": ");
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "invalid_json");
  }
  EXPECT_EQ(parse_size("4096"), 4096);
  EXPECT_EQ(parse_size("512M"), 512ll << 20);
  EXPECT_EQ(parse_size("2G"), 2ll << 30);
  EXPECT_EQ(parse_size("1.5GiB"), 3ll << 29);
  EXPECT_EQ(parse_size("64KB"), 64ll << 10);
  for (const char* bad : {"", "x", "-1", "0", "12Q", "1e30G", "nan"}) EXPECT_THROW(parse_size(bad), Error) << bad;
}

}  // namespace
}  // namespace gqe::serve
