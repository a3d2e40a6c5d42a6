#include "gqe/eval/scoring.h"

#include <algorithm>
#include <numeric>

#include "gqe/core/error.h"

namespace gqe::eval {

namespace {

struct Prepared {
  std::vector<int64_t> input;   // what the model sees
  std::vector<int64_t> target;  // continuation tokens
  bool truncated = false;
};

Prepared prepare(const EncodedPair& r, size_t index, int64_t max_length, int64_t vocab) {
  if (r.context.empty()) throw RequestError(index, "a request has no context tokens (an empty context needs a prefix token)");
  if (r.continuation.empty())
    throw RequestError(index, "a continuation encodes to no tokens (the tokenizer merged it into the context)");
  if (int64_t(r.continuation.size()) > max_length)
    throw RequestError(index, "a continuation of " + std::to_string(r.continuation.size()) +
                                  " tokens exceeds the max length " + std::to_string(max_length));
  std::vector<int64_t> all = r.context;
  all.insert(all.end(), r.continuation.begin(), r.continuation.end());
  for (int64_t t : all)
    if (t < 0 || t >= vocab)
      throw RequestError(index, "token id " + std::to_string(t) + " is outside the model's vocabulary of " +
                                    std::to_string(vocab) + " (tokenizer and checkpoint do not match)");
  Prepared p;
  const size_t keep = std::min(all.size(), size_t(max_length + 1));
  p.truncated = keep < all.size();
  p.input.assign(all.end() - keep, all.end() - 1);
  p.target = r.continuation;
  return p;
}

int64_t resolve_max_length(const LanguageModel& model, int64_t max_length) {
  const int64_t m = model.config().max_position_embeddings;
  if (max_length <= 0) return m;
  return std::min(max_length, m);
}

}  // namespace

std::vector<Loglikelihood> score_loglikelihoods(LanguageModel& model, const std::vector<EncodedPair>& reqs,
                                                const ScoreOptions& opt,
                                                const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t max_len = resolve_max_length(model, opt.max_length);
  const int64_t V = model.config().vocab_size;
  if (opt.batch_size <= 0) throw Error("batch size must be positive");
  std::vector<Prepared> prep;
  prep.reserve(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) prep.push_back(prepare(reqs[i], i, max_len, V));

  // Longest first, like the harness's Collator (ties by tokens), so a batch's padding is small and an
  // out-of-memory batch shows up at once.
  std::vector<size_t> order(reqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto la = prep[a].input.size(), lb = prep[b].input.size();
    if (la != lb) return la > lb;
    return prep[a].input < prep[b].input;
  });

  std::vector<Loglikelihood> out(reqs.size());
  torch::NoGradGuard no_grad;
  model.eval();
  for (size_t start = 0; start < order.size(); start += size_t(opt.batch_size)) {
    const size_t end = std::min(order.size(), start + size_t(opt.batch_size));
    const int64_t B = int64_t(end - start);
    int64_t T = 0;
    for (size_t i = start; i < end; ++i) T = std::max<int64_t>(T, int64_t(prep[order[i]].input.size()));
    at::Tensor tokens = at::full({B, T}, opt.pad_token, at::kLong);  // [B, T]; host: filled here, then copied
    auto acc = tokens.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& in = prep[order[start + size_t(b)]].input;
      for (size_t t = 0; t < in.size(); ++t) acc[b][int64_t(t)] = in[t];
    }
    at::Tensor logits = model.forward(tokens.to(model.device())).logits;  // [B, T, V]
    for (int64_t b = 0; b < B; ++b) {
      const size_t idx = order[start + size_t(b)];
      const Prepared& p = prep[idx];
      const int64_t inplen = int64_t(p.input.size()), contlen = int64_t(p.target.size());
      // Positions inplen-contlen .. inplen-1 predict the continuation tokens.
      // Scored on the host: the same float arithmetic whichever device ran the model.
      at::Tensor lp = at::log_softmax(logits[b].narrow(0, inplen - contlen, contlen).to(at::kCPU, at::kFloat), -1);  // [C, V]
      at::Tensor tgt = at::tensor(p.target, at::kLong);  // [C]; host: beside the host logits
      at::Tensor picked = lp.gather(1, tgt.unsqueeze(1)).squeeze(1);                                    // [C]
      Loglikelihood r;
      r.logprob = picked.to(at::kDouble).sum().item<double>();
      r.greedy = lp.argmax(-1).eq(tgt).all().item<bool>();
      r.input_len = inplen;
      r.truncated = p.truncated;
      out[idx] = r;
    }
    if (progress) progress(int64_t(end), int64_t(order.size()));
  }
  return out;
}

Loglikelihood score_one_reference(LanguageModel& model, const EncodedPair& req, int64_t max_length) {
  const int64_t max_len = resolve_max_length(model, max_length);
  Prepared p = prepare(req, 0, max_len, model.config().vocab_size);
  torch::NoGradGuard no_grad;
  model.eval();
  // host: the ids are copied to the model, the logits back
  at::Tensor logits = model.forward(at::tensor(p.input, at::kLong).unsqueeze(0).to(model.device())).logits[0].to(at::kCPU);
  at::Tensor lp = at::log_softmax(logits.to(at::kDouble), -1);                                // [T, V]
  const int64_t T = int64_t(p.input.size()), C = int64_t(p.target.size());
  Loglikelihood r;
  r.greedy = true;
  for (int64_t j = 0; j < C; ++j) {
    const int64_t pos = T - C + j;  // the position whose next token is target[j]
    r.logprob += lp[pos][p.target[size_t(j)]].item<double>();
    if (lp[pos].argmax().item<int64_t>() != p.target[size_t(j)]) r.greedy = false;
  }
  r.input_len = T;
  r.truncated = p.truncated;
  return r;
}

}  // namespace gqe::eval
