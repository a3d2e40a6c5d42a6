#include "gqe/serve/api.h"

#include <cmath>
#include <limits>
#include <set>

#include "gqe/core/error.h"

namespace gqe::serve {

using nlohmann::json;

json ApiError::body() const {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

json parse_json_body(const std::string& body) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what(), "invalid_request_error", "",
                   "invalid_json");
  }
}

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number";
    default: return "an integer";
  }
}

[[noreturn]] void bad(const std::string& param, const std::string& what) {
  throw ApiError(400, "'" + param + "': " + what, "invalid_request_error", param, "invalid_value");
}
[[noreturn]] void wrong_type(const std::string& param, const json& v, const std::string& expected) {
  bad(param, std::string(type_name(v)) + " is not " + expected);
}

int64_t get_int(const json& v, const std::string& param, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      bad(param, v.dump() + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
    x = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()) &&
             std::fabs(v.get<double>()) < 9e15) {
    x = int64_t(v.get<double>());  // 16.0: JSON has one number type
  } else {
    wrong_type(param, v, "an integer");
  }
  if (x < lo || x > hi) bad(param, std::to_string(x) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  return x;
}

double get_number(const json& v, const std::string& param, double lo, double hi) {
  if (!v.is_number()) wrong_type(param, v, "a number");
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) bad(param, v.dump() + " is outside " + json(lo).dump() + ".." + json(hi).dump());
  return x;
}

bool get_bool(const json& v, const std::string& param) {
  if (!v.is_boolean()) wrong_type(param, v, "a boolean");
  return v.get<bool>();
}

const std::string& get_string(const json& v, const std::string& param) {
  if (!v.is_string()) wrong_type(param, v, "a string");
  return v.get_ref<const std::string&>();
}

void check_object(const json& body) {
  if (!body.is_object()) throw ApiError(400, std::string("the request body is ") + type_name(body) + ", not a JSON object");
}

// The fields gqe ignores only at their neutral values: anything else asks for an effect gqe does not have.
void neutral(const json& body, const std::string& key, const json& neutral_value) {
  if (!body.contains(key) || body[key].is_null()) return;
  if (body[key] != neutral_value)
    bad(key, "gqe serve supports only " + neutral_value.dump() + " (or leaving it out), got " + body[key].dump());
}

void check_model(const json& body, const ApiLimits& limits) {
  if (!body.contains("model")) return;  // one model is served: naming it is optional
  const std::string& m = get_string(body["model"], "model");
  if (m != limits.model_name)
    throw ApiError(404, "the model '" + m + "' does not exist: this server serves '" + limits.model_name + "'",
                   "invalid_request_error", "model", "model_not_found");
}

// Fields both endpoints take, read into s; `seen` collects the keys handled.
void parse_sampling(const json& body, const ApiLimits& limits, SamplingRequest& s, std::set<std::string>& seen) {
  auto field = [&](const char* key) -> const json* {
    seen.insert(key);
    if (!body.contains(key) || body[key].is_null()) return nullptr;
    return &body[key];
  };
  const int64_t most = std::max<int64_t>(limits.context, 1);
  if (const json* v = field("max_tokens")) s.max_tokens = get_int(*v, "max_tokens", 1, most);
  if (const json* v = field("temperature")) s.temperature = get_number(*v, "temperature", 0.0, 2.0);
  if (const json* v = field("top_k")) s.top_k = get_int(*v, "top_k", 0, std::numeric_limits<int32_t>::max());
  if (const json* v = field("top_p")) {
    s.top_p = get_number(*v, "top_p", 0.0, 1.0);
    if (s.top_p <= 0) bad("top_p", "must be greater than 0");
  }
  if (const json* v = field("seed")) {
    if (v->is_number_integer() && v->is_number_unsigned()) s.seed = v->get<uint64_t>();
    else s.seed = uint64_t(get_int(*v, "seed", 0, std::numeric_limits<int64_t>::max()));
  }
  if (const json* v = field("stop")) {
    if (v->is_string()) {
      s.stop = {v->get<std::string>()};
    } else if (v->is_array()) {
      for (size_t i = 0; i < v->size(); ++i) s.stop.push_back(get_string((*v)[i], "stop[" + std::to_string(i) + "]"));
    } else {
      wrong_type("stop", *v, "a string or an array of strings");
    }
    if (int64_t(s.stop.size()) > limits.max_stop) bad("stop", "at most " + std::to_string(limits.max_stop) + " stop strings");
    for (const std::string& x : s.stop)
      if (x.empty()) bad("stop", "a stop string must not be empty");
  }
  if (const json* v = field("n")) s.n = get_int(*v, "n", 1, limits.max_n);
  if (const json* v = field("stream")) s.stream = get_bool(*v, "stream");
  if (const json* v = field("stream_options")) {
    if (!v->is_object()) wrong_type("stream_options", *v, "an object");
    for (const auto& [k, x] : v->items()) {
      if (k != "include_usage") bad("stream_options." + k, "unknown field (known: include_usage)");
      s.include_usage = get_bool(x, "stream_options.include_usage");
    }
    if (!s.stream) bad("stream_options", "only allowed with \"stream\": true");
  }
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    seen.insert(key);
    if (body.contains(key) && !body[key].is_null()) {
      get_number(body[key], key, -2.0, 2.0);
      neutral(body, key, 0);
    }
  }
  seen.insert("logit_bias");
  if (body.contains("logit_bias") && !body["logit_bias"].is_null()) {
    if (!body["logit_bias"].is_object()) wrong_type("logit_bias", body["logit_bias"], "an object");
    if (!body["logit_bias"].empty()) bad("logit_bias", "gqe serve does not support logit_bias");
  }
  seen.insert("user");
  if (body.contains("user") && !body["user"].is_null()) get_string(body["user"], "user");
  seen.insert("model");
}

void reject_unknown(const json& body, const std::set<std::string>& seen) {
  for (const auto& [k, v] : body.items())
    if (!seen.count(k))
      throw ApiError(400, "unrecognized request argument supplied: " + k, "invalid_request_error", k,
                     "unknown_parameter");
}

}  // namespace

CompletionRequest parse_completion_request(const json& body, const ApiLimits& limits) {
  check_object(body);
  check_model(body, limits);
  CompletionRequest r;
  std::set<std::string> seen{"prompt", "echo", "logprobs", "best_of", "suffix"};
  parse_sampling(body, limits, r.sampling, seen);
  if (!body.contains("prompt") || body["prompt"].is_null()) bad("prompt", "missing: give the prompt as text or token ids");
  const json& p = body["prompt"];
  auto ids_from = [&](const json& a, const std::string& param) {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < a.size(); ++i)
      ids.push_back(get_int(a[i], param + "[" + std::to_string(i) + "]", 0, limits.vocab - 1));
    return ids;
  };
  if (p.is_string()) {
    r.prompt_text = p.get<std::string>();
  } else if (p.is_array() && !p.empty() && p[0].is_string()) {
    if (p.size() != 1) bad("prompt", "one prompt per request (got " + std::to_string(p.size()) + "): send one request each");
    r.prompt_text = p[0].get<std::string>();
  } else if (p.is_array() && !p.empty() && p[0].is_array()) {
    if (p.size() != 1) bad("prompt", "one prompt per request (got " + std::to_string(p.size()) + "): send one request each");
    r.prompt_ids = ids_from(p[0], "prompt[0]");
  } else if (p.is_array()) {
    r.prompt_ids = ids_from(p, "prompt");
  } else {
    wrong_type("prompt", p, "a string, an array of token ids, or an array of one of either");
  }
  if (r.prompt_text ? r.prompt_text->empty() : r.prompt_ids.empty()) bad("prompt", "must not be empty");
  if (body.contains("echo") && !body["echo"].is_null()) r.echo = get_bool(body["echo"], "echo");
  if (body.contains("logprobs") && !body["logprobs"].is_null())
    r.sampling.logprobs = get_int(body["logprobs"], "logprobs", 0, limits.max_logprobs);
  neutral(body, "best_of", 1);
  neutral(body, "suffix", json(""));
  reject_unknown(body, seen);
  return r;
}

ChatRequest parse_chat_request(const json& body, const ApiLimits& limits) {
  check_object(body);
  check_model(body, limits);
  ChatRequest r;
  std::set<std::string> seen{"messages", "max_completion_tokens", "logprobs", "top_logprobs"};
  parse_sampling(body, limits, r.sampling, seen);
  if (body.contains("max_completion_tokens") && !body["max_completion_tokens"].is_null())
    r.sampling.max_tokens = get_int(body["max_completion_tokens"], "max_completion_tokens", 1, std::max<int64_t>(limits.context, 1));
  const bool logprobs = body.contains("logprobs") && !body["logprobs"].is_null() && get_bool(body["logprobs"], "logprobs");
  int64_t top = 0;
  if (body.contains("top_logprobs") && !body["top_logprobs"].is_null()) {
    top = get_int(body["top_logprobs"], "top_logprobs", 0, limits.max_logprobs);
    if (!logprobs) bad("top_logprobs", "needs \"logprobs\": true");
  }
  if (logprobs) r.sampling.logprobs = top;
  if (!body.contains("messages")) bad("messages", "missing");
  const json& m = body["messages"];
  if (!m.is_array()) wrong_type("messages", m, "an array");
  if (m.empty()) bad("messages", "must hold at least one message");
  for (size_t i = 0; i < m.size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m[i].is_object()) wrong_type(at, m[i], "an object");
    ChatMessage msg;
    for (const auto& [k, v] : m[i].items()) {
      if (k == "role") {
        msg.role = get_string(v, at + ".role");
        if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "developer")
          bad(at + ".role", "'" + msg.role + "' is not one of system, developer, user, assistant");
      } else if (k == "content") {
        msg.content = get_string(v, at + ".content");
      } else if (k == "name") {
        get_string(v, at + ".name");
      } else {
        throw ApiError(400, "unrecognized request argument supplied: " + at + "." + k, "invalid_request_error",
                       at + "." + k, "unknown_parameter");
      }
    }
    if (msg.role.empty()) bad(at + ".role", "missing");
    if (!m[i].contains("content")) bad(at + ".content", "missing");
    r.messages.push_back(std::move(msg));
  }
  reject_unknown(body, seen);
  return r;
}

std::string chat_prompt(const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const ChatMessage& m : messages) {
    const std::string role = m.role == "user" ? "User" : m.role == "assistant" ? "Assistant" : "System";
    out += role + ": " + m.content + "\n";
  }
  return out + "Assistant:";
}

int64_t parse_size(const std::string& text) {
  size_t end = 0;
  double x = 0;
  try {
    x = std::stod(text, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  std::string unit = text.substr(end);
  double scale = 1;
  if (!unit.empty() && unit.back() == 'B') unit.pop_back();
  if (!unit.empty() && unit.back() == 'i') unit.pop_back();
  if (unit == "K" || unit == "k") scale = 1024.0;
  else if (unit == "M") scale = 1024.0 * 1024;
  else if (unit == "G") scale = 1024.0 * 1024 * 1024;
  else if (unit == "T") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty()) end = 0;
  if (end == 0 || !std::isfinite(x) || x <= 0 || x * scale > 9e18)
    throw Error("'" + text + "' is not a size (a positive number of bytes, or with K, M, G or T: 512M, 2G)");
  return int64_t(x * scale);
}

}  // namespace gqe::serve
