// Loglikelihood of continuations under a LanguageModel, batched, as lm-evaluation-harness's
// HFLM._loglikelihood_tokens computes it (docs/eval.md, "What is computed, exactly"):
//   input  = (context + continuation)[-(max_length + 1):][:-1]      (left truncation)
//   logits = log_softmax(model(input)) at the last len(continuation) positions
//   ll     = sum of the log-probabilities of the continuation tokens; greedy = argmax matches every token.
// Requests are sorted by length (longest first, as the harness does) and right-padded within a batch;
// attention is causal and GQE routes each token alone, so padding never changes a row's scores.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "gqe/core/error.h"
#include "gqe/eval/requests.h"
#include "gqe/model/transformer.h"

namespace gqe::eval {

struct Loglikelihood {
  double logprob = 0;     // sum over continuation tokens (natural log)
  bool greedy = false;    // every continuation token is the argmax
  int64_t input_len = 0;  // tokens fed after truncation
  bool truncated = false;
};

struct ScoreOptions {
  int64_t batch_size = 16;   // requests per forward pass
  int64_t max_length = 0;    // 0: the model's max_position_embeddings
  int64_t pad_token = 0;     // fills the right of shorter rows (never attended to by real tokens)
};

// A request that cannot be scored (no tokens, a continuation longer than the max length, a token outside
// the vocabulary); `request` is its index in the list given to score_loglikelihoods, for callers to name
// the task, file and doc.
struct RequestError : Error {
  RequestError(size_t request, const std::string& what) : Error(what), request(request) {}
  size_t request;
};

// progress(done, total) is called after each batch. Results are in the order of `reqs`.
std::vector<Loglikelihood> score_loglikelihoods(LanguageModel& model, const std::vector<EncodedPair>& reqs,
                                                const ScoreOptions& opt,
                                                const std::function<void(int64_t, int64_t)>& progress = {});

// The same scores, computing each shared context once: `group[i]` names request i's doc; when every
// request of a doc has the same context tokens and none is truncated, the doc's context is run once and
// its K/V cache serves all its continuations. A pass prefills up to opt.batch_size contexts (longest first,
// right-padded); their continuations follow, opt.batch_size requests per pass (longest first), each against
// its context's cache, repeated per request and made ragged at the context's length. Other docs (winogrande's, whose choices are the contexts;
// truncated ones) go through score_loglikelihoods. A continuation's first token is predicted by the
// context's last position, the rest by the cached forward of continuation[:-1].
std::vector<Loglikelihood> score_shared_contexts(LanguageModel& model, const std::vector<EncodedPair>& reqs,
                                                 const std::vector<int64_t>& group, const ScoreOptions& opt,
                                                 const std::function<void(int64_t, int64_t)>& progress = {});

// The straightforward reference for one request: one unbatched forward pass, log_softmax over the
// whole sequence in double, sum at the continuation positions. Tests compare the batched path with it.
Loglikelihood score_one_reference(LanguageModel& model, const EncodedPair& req, int64_t max_length);

}  // namespace gqe::eval
