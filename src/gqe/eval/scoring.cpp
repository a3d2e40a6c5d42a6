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

std::vector<Loglikelihood> score_shared_contexts(LanguageModel& model, const std::vector<EncodedPair>& reqs,
                                                 const std::vector<int64_t>& group, const ScoreOptions& opt,
                                                 const std::function<void(int64_t, int64_t)>& progress) {
  if (group.size() != reqs.size()) throw Error("score_shared_contexts: one group per request expected");
  const int64_t max_len = resolve_max_length(model, opt.max_length);
  const int64_t V = model.config().vocab_size;
  if (opt.batch_size <= 0) throw Error("batch size must be positive");
  std::vector<Prepared> prep;
  prep.reserve(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) prep.push_back(prepare(reqs[i], i, max_len, V));

  // Requests of each doc, in order; a doc shares when its requests have one context and none is cut.
  std::vector<std::vector<size_t>> docs;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (i == 0 || group[i] != group[i - 1]) docs.emplace_back();
    docs.back().push_back(i);
  }
  std::vector<size_t> shared, alone;
  for (size_t d = 0; d < docs.size(); ++d) {
    bool ok = true;
    for (size_t i : docs[d]) ok = ok && !prep[i].truncated && reqs[i].context == reqs[docs[d][0]].context;
    if (ok) {
      shared.push_back(d);
    } else {
      alone.insert(alone.end(), docs[d].begin(), docs[d].end());
    }
  }
  const int64_t total = int64_t(reqs.size());
  int64_t done = 0;
  std::vector<Loglikelihood> out(reqs.size());
  if (!alone.empty()) {
    std::vector<EncodedPair> sub;
    for (size_t i : alone) sub.push_back(reqs[i]);
    std::vector<Loglikelihood> r;
    try {
      r = score_loglikelihoods(model, sub, opt, [&](int64_t d, int64_t) { if (progress) progress(d, total); });
    } catch (const RequestError& e) {
      throw RequestError(alone[e.request], e.what());
    }
    for (size_t k = 0; k < alone.size(); ++k) out[alone[k]] = r[k];
    done = int64_t(alone.size());
  }

  // Longest context first; docs of equal context length are prefilled together (no padding, so every
  // position is real and the cache holds nothing else).
  std::stable_sort(shared.begin(), shared.end(), [&](size_t a, size_t b) {
    return reqs[docs[a][0]].context.size() > reqs[docs[b][0]].context.size();
  });
  torch::NoGradGuard no_grad;
  model.eval();
  for (size_t start = 0; start < shared.size();) {
    const size_t Lc = reqs[docs[shared[start]][0]].context.size();
    size_t end = start, n_req = 0;
    while (end < shared.size() && reqs[docs[shared[end]][0]].context.size() == Lc &&
           (end == start || n_req + docs[shared[end]].size() <= size_t(opt.batch_size))) {
      n_req += docs[shared[end]].size();
      ++end;
    }
    const int64_t B = int64_t(end - start), N = int64_t(n_req);
    at::Tensor ctx = at::empty({B, int64_t(Lc)}, at::kLong);  // [B, Lc]; host: filled here, then copied
    auto ca = ctx.accessor<int64_t, 2>();
    std::vector<int64_t> owner;  // request row -> context row
    std::vector<size_t> rows;    // request row -> request index
    int64_t Cmax = 0;
    for (int64_t b = 0; b < B; ++b) {
      const auto& idx = docs[shared[start + size_t(b)]];
      const auto& c = reqs[idx[0]].context;
      for (size_t t = 0; t < Lc; ++t) ca[b][int64_t(t)] = c[t];
      for (size_t i : idx) {
        owner.push_back(b);
        rows.push_back(i);
        Cmax = std::max<int64_t>(Cmax, int64_t(reqs[i].continuation.size()));
      }
    }
    KVCache cache = model.make_cache();
    // [B, V]: predicts continuation[0]; scored on the host, as score_requests does
    at::Tensor first = model.forward(ctx.to(model.device()), &cache).logits.select(1, int64_t(Lc) - 1).to(at::kCPU);
    at::Tensor rest;                                                                   // [N, Cmax-1, V]
    if (Cmax > 1) {
      // Each continuation row attends to its own context's K/V: the cache repeated per request.
      const at::Tensor own = at::tensor(owner, at::kLong).to(model.device());  // host: copied to the cache
      KVCache per_request = model.make_cache();
      for (size_t l = 0; l < cache.layers.size(); ++l)
        per_request.layers[l].append(cache.layers[l].keys().index_select(0, own), cache.layers[l].values().index_select(0, own));
      at::Tensor cont = at::full({N, Cmax - 1}, opt.pad_token, at::kLong);  // host: filled here, then copied
      auto xa = cont.accessor<int64_t, 2>();
      for (int64_t r = 0; r < N; ++r) {
        const auto& c = reqs[rows[size_t(r)]].continuation;
        for (size_t t = 0; t + 1 < c.size(); ++t) xa[r][int64_t(t)] = c[t];
      }
      rest = model.forward(cont.to(model.device()), &per_request).logits.to(at::kCPU);
    }
    for (int64_t r = 0; r < N; ++r) {
      const size_t i = rows[size_t(r)];
      const int64_t C = int64_t(reqs[i].continuation.size());
      at::Tensor logits = first[owner[size_t(r)]].unsqueeze(0);  // [1, V]
      if (C > 1) logits = at::cat({logits, rest[r].narrow(0, 0, C - 1)}, 0);  // [C, V]
      at::Tensor lp = at::log_softmax(logits.to(at::kFloat), -1);
      at::Tensor tgt = at::tensor(reqs[i].continuation, at::kLong);  // host: beside the host logits
      Loglikelihood ll;
      ll.logprob = lp.gather(1, tgt.unsqueeze(1)).squeeze(1).to(at::kDouble).sum().item<double>();
      ll.greedy = lp.argmax(-1).eq(tgt).all().item<bool>();
      ll.input_len = int64_t(prep[i].input.size());
      out[i] = ll;
    }
    done += N;
    if (progress) progress(done, total);
    start = end;
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
