#include "gqe/eval/requests.h"

#include <nlohmann/json.hpp>

#include "gqe/core/error.h"
#include "gqe/eval/text.h"

namespace gqe::eval {

std::vector<Request> build_requests(const std::vector<McDoc>& docs) {
  std::vector<Request> out;
  for (size_t d = 0; d < docs.size(); ++d)
    for (size_t c = 0; c < docs[d].choices.size(); ++c)
      if (docs[d].shared_continuation)
        out.push_back({int64_t(d), int64_t(c), docs[d].choices[c], kTargetDelimiter + *docs[d].shared_continuation});
      else
        out.push_back({int64_t(d), int64_t(c), docs[d].context, kTargetDelimiter + docs[d].choices[c]});
  return out;
}

EncodedPair encode_pair(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                        int64_t prefix_token) {
  EncodedPair e;
  if (context.empty()) {
    if (prefix_token < 0)
      throw Error("empty context and the tokenizer '" + tok.name() + "' has no end-of-text token to condition on");
    e.context = {prefix_token};
    e.continuation = tok.encode(continuation);
    return e;
  }
  const std::string ctx = py_rstrip(context);
  const std::string cont = context.substr(ctx.size()) + continuation;
  const std::vector<int64_t> whole = tok.encode(ctx + cont);
  e.context = tok.encode(ctx);
  // Exactly the harness: the conditioning tokens are encode(context) and the scored tokens are the
  // whole's tail after as many tokens. With a tokenizer that merges across the boundary the two need not
  // concatenate to the whole encoding; the harness accepts that, and so do we.
  if (e.context.size() < whole.size()) e.continuation.assign(whole.begin() + e.context.size(), whole.end());
  return e;
}

std::string request_json(const std::string& task, const McDoc& doc, const Request& r, const EncodedPair& enc,
                         const RequestScore* score) {
  nlohmann::ordered_json j;
  j["task"] = task;
  j["doc"] = r.doc;
  j["doc_id"] = doc.id;
  j["line"] = doc.line;
  if (!doc.subtask.empty()) {
    j["subtask"] = doc.subtask;
    j["subtask_doc"] = doc.subtask_doc;
  }
  j["choice"] = r.choice;
  j["context"] = r.context;
  j["continuation"] = r.continuation;
  j["gold"] = doc.gold;
  j["context_tokens"] = enc.context.size();
  j["continuation_tokens"] = enc.continuation.size();
  if (score) {
    j["loglikelihood"] = score->loglikelihood;  // printed to round-trip exactly
    j["is_greedy"] = score->is_greedy;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gqe::eval
