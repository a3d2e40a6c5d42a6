// Loglikelihood requests of the multiple-choice tasks and their tokenisation, as lm-evaluation-harness
// v0.4+ builds them (docs/eval.md, "What is computed, exactly"). Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gqe/tokenizers/tokenizer.h"
#include "gqe/eval/tasks.h"

namespace gqe::eval {

// The harness's default target_delimiter: each continuation is " " + choice.
inline const char* kTargetDelimiter = " ";

struct Request {
  int64_t doc = 0;     // index into the task's docs
  int64_t choice = 0;  // index into the doc's choices
  std::string context;
  std::string continuation;  // kTargetDelimiter + choice
};

// One request per (doc, choice), docs in file order, choices in order. For a doc with a shared
// continuation (winogrande) the choice is the context.
std::vector<Request> build_requests(const std::vector<McDoc>& docs);

struct EncodedPair {
  std::vector<int64_t> context;       // tokens conditioned on
  std::vector<int64_t> continuation;  // tokens scored
};

// The harness's _encode_pair: trailing whitespace of the context moves to the front of the continuation;
// then context + continuation is encoded as one string and the continuation's tokens are the whole
// encoding after the first len(encode(context)) tokens. An empty context conditions on `prefix_token`
// (the harness uses EOT/BOS); with prefix_token < 0 an empty context is an error.
EncodedPair encode_pair(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                        int64_t prefix_token = -1);

// A request's score: the harness's (loglikelihood, is_greedy) pair.
struct RequestScore {
  double loglikelihood = 0;  // natural log, summed over the continuation's tokens
  bool is_greedy = false;    // every continuation token is the argmax
};

// One JSON line per request, for diffing against another harness's requests:
// {"task","doc","doc_id","line",["subtask","subtask_doc",]"choice","context","continuation","gold","context_tokens",
//  "continuation_tokens"},
// then "loglikelihood" and "is_greedy" when `score` is given.
std::string request_json(const std::string& task, const McDoc& doc, const Request& r, const EncodedPair& enc,
                         const RequestScore* score = nullptr);

}  // namespace gqe::eval
