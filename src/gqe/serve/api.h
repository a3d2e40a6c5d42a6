// The OpenAI-compatible request bodies gqe serve accepts, parsed and checked before anything is queued, and
// the error every refusal becomes: {"error": {"message", "type", "param", "code"}} with an HTTP status.
// Unknown fields are refused by name (as the OpenAI API does): a client that sends one expects an effect
// that gqe would silently not give.
#pragma once
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gqe::serve {

struct ApiError : std::exception {
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : status(status), message(std::move(message)), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  const char* what() const noexcept override { return message.c_str(); }
  nlohmann::json body() const;  // {"error": {...}}; empty param / code are null
  int status;
  std::string message, type, param, code;
};

// What the server's model allows a request to ask for.
struct ApiLimits {
  std::string model_name;     // the one model served (GET /v1/models)
  int64_t context = 0;        // max_position_embeddings
  int64_t vocab = 0;          // the tokenizer's vocabulary (token ids in a prompt lie below it)
  int64_t max_n = 8;          // choices per request
  int64_t max_logprobs = 5;   // alternatives per token
  int64_t max_stop = 4;       // stop strings
};

// The sampling fields common to both endpoints, after defaults.
struct SamplingRequest {
  int64_t max_tokens = 16;
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: off (an extension of the OpenAI API, as vLLM's)
  double top_p = 1.0;
  std::optional<uint64_t> seed;  // absent: a fresh random seed per request
  std::vector<std::string> stop;
  int64_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int64_t logprobs = -1;       // -1: none; otherwise the sampled token's and this many alternatives
};

struct CompletionRequest {
  SamplingRequest sampling;
  std::optional<std::string> prompt_text;     // the prompt as text, or
  std::vector<int64_t> prompt_ids;            // as token ids (when prompt_text is absent)
  bool echo = false;
};

struct ChatMessage {
  std::string role, content;
};

struct ChatRequest {
  SamplingRequest sampling;
  std::vector<ChatMessage> messages;
};

// Throw ApiError (400 / 404) naming the offending field.
CompletionRequest parse_completion_request(const nlohmann::json& body, const ApiLimits& limits);
ChatRequest parse_chat_request(const nlohmann::json& body, const ApiLimits& limits);

// The body as JSON, or a 400 ApiError saying where it stopped parsing.
nlohmann::json parse_json_body(const std::string& body);

// The chat template: every message as "<Role>: <content>\n" (System, User, Assistant), then "Assistant:"
// for the model to continue. The model was trained on plain text, so the template is plain text too.
std::string chat_prompt(const std::vector<ChatMessage>& messages);
// The stop string chat completions always add: the model starting the user's next turn.
inline constexpr const char* kChatTurnStop = "\nUser:";

// "512M", "2G", "1.5GiB", "4096" (bytes): K/M/G/T are powers of 1024, with or without "i" and "B".
int64_t parse_size(const std::string& text);

}  // namespace gqe::serve
