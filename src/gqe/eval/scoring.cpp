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

// The log-likelihood of `target` from the logits that predict it: logits [C, V] (any float type, on the host).
// Scored on the host in float32 (log_softmax) and summed in double: the same arithmetic whichever device
// ran the model.
Loglikelihood score_rows(const at::Tensor& logits, const std::vector<int64_t>& target) {
  at::Tensor lp = at::log_softmax(logits.to(at::kFloat), -1);  // [C, V]
  at::Tensor tgt = at::tensor(target, at::kLong);               // [C]; host: beside the host logits
  Loglikelihood r;
  r.logprob = lp.gather(1, tgt.unsqueeze(1)).squeeze(1).to(at::kDouble).sum().item<double>();
  r.greedy = lp.argmax(-1).eq(tgt).all().item<bool>();
  return r;
}

// The LM head on the rows of hidden [B, T, d] at flat indices b * T + t only (the positions whose next
// token is scored: a scoring pass needs a fraction of them) -> [rows, V] on the host.
at::Tensor logits_at(LanguageModel& model, const at::Tensor& hidden, const std::vector<int64_t>& flat) {
  const at::Tensor idx = at::tensor(flat, at::kLong).to(hidden.device());  // host: copied to the hidden states
  return model.logits_of(hidden.reshape({-1, hidden.size(-1)}).index_select(0, idx)).to(at::kCPU);
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
    // Positions inplen-contlen .. inplen-1 of each row predict its continuation tokens.
    const at::Tensor hidden = model.hidden_states(tokens.to(model.device()));  // [B, T, d]
    std::vector<int64_t> flat;
    for (int64_t b = 0; b < B; ++b) {
      const Prepared& p = prep[order[start + size_t(b)]];
      const int64_t inplen = int64_t(p.input.size()), contlen = int64_t(p.target.size());
      for (int64_t j = 0; j < contlen; ++j) flat.push_back(b * T + inplen - contlen + j);
    }
    const at::Tensor logits = logits_at(model, hidden, flat);  // [sum of contlen, V]
    int64_t row = 0;
    for (int64_t b = 0; b < B; ++b) {
      const size_t idx = order[start + size_t(b)];
      const Prepared& p = prep[idx];
      const int64_t contlen = int64_t(p.target.size());
      Loglikelihood r = score_rows(logits.narrow(0, row, contlen), p.target);
      row += contlen;
      r.input_len = int64_t(p.input.size());
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

  // Longest context first, so that a pass's contexts differ little in length. A pass prefills up to
  // opt.batch_size contexts, right-padded (causal attention: no real position sees the padding after it);
  // their continuations follow against the cache made ragged at each context's length.
  std::stable_sort(shared.begin(), shared.end(), [&](size_t a, size_t b) {
    return reqs[docs[a][0]].context.size() > reqs[docs[b][0]].context.size();
  });
  torch::NoGradGuard no_grad;
  model.eval();
  for (size_t start = 0; start < shared.size();) {
    const size_t end = std::min(shared.size(), start + size_t(opt.batch_size));
    const int64_t B = int64_t(end - start);
    const int64_t Lmax = int64_t(reqs[docs[shared[start]][0]].context.size());
    at::Tensor ctx = at::full({B, Lmax}, opt.pad_token, at::kLong);  // [B, Lmax]; host: filled here, then copied
    auto ca = ctx.accessor<int64_t, 2>();
    std::vector<int64_t> owner;       // request row -> context row
    std::vector<size_t> rows;         // request row -> request index
    std::vector<int64_t> ctx_len;     // request row -> its context's length
    std::vector<int64_t> last(static_cast<size_t>(B));  // context row -> its last real position
    for (int64_t b = 0; b < B; ++b) {
      const auto& idx = docs[shared[start + size_t(b)]];
      const auto& c = reqs[idx[0]].context;
      for (size_t t = 0; t < c.size(); ++t) ca[b][int64_t(t)] = c[t];
      last[size_t(b)] = int64_t(c.size()) - 1;
      for (size_t i : idx) {
        owner.push_back(b);
        rows.push_back(i);
        ctx_len.push_back(int64_t(c.size()));
      }
    }
    const int64_t N = int64_t(rows.size());
    KVCache cache = model.make_cache();
    // Each context's last real position predicts its continuations' first token.
    const at::Tensor ctx_hidden = model.hidden_states(ctx.to(model.device()), &cache);  // [B, Lmax, d]
    std::vector<int64_t> last_flat;
    for (int64_t b = 0; b < B; ++b) last_flat.push_back(b * Lmax + last[size_t(b)]);
    const at::Tensor first = logits_at(model, ctx_hidden, last_flat);  // [B, V]
    // The continuations' other tokens, opt.batch_size requests per pass, longest first (little padding):
    // each row attends to its own context's K/V, the cache repeated per request and made ragged.
    std::vector<int64_t> by_len(static_cast<size_t>(N));
    std::iota(by_len.begin(), by_len.end(), 0);
    std::stable_sort(by_len.begin(), by_len.end(), [&](int64_t x, int64_t y) {
      return reqs[rows[size_t(x)]].continuation.size() > reqs[rows[size_t(y)]].continuation.size();
    });
    for (size_t c0 = 0; c0 < by_len.size(); c0 += size_t(opt.batch_size)) {
      const size_t c1 = std::min(by_len.size(), c0 + size_t(opt.batch_size));
      const int64_t n = int64_t(c1 - c0);
      const int64_t Cm = int64_t(reqs[rows[size_t(by_len[c0])]].continuation.size()) - 1;  // the chunk's longest
      std::vector<at::Tensor> rest(static_cast<size_t>(n));  // [C-1, V] per row of the chunk
      if (Cm > 0) {
        std::vector<int64_t> own, lens;
        for (size_t k = c0; k < c1; ++k) {
          own.push_back(owner[size_t(by_len[k])]);
          lens.push_back(ctx_len[size_t(by_len[k])]);
        }
        const at::Tensor own_t = at::tensor(own, at::kLong).to(model.device());  // host: copied to the cache
        KVCache per_request = model.make_cache();
        for (size_t l = 0; l < cache.layers.size(); ++l)
          per_request.layers[l].append(cache.layers[l].keys().index_select(0, own_t),
                                       cache.layers[l].values().index_select(0, own_t));
        per_request.set_lengths(lens);
        at::Tensor cont = at::full({n, Cm}, opt.pad_token, at::kLong);  // [n, Cm]; host: filled here, then copied
        auto xa = cont.accessor<int64_t, 2>();
        std::vector<int64_t> flat;
        for (int64_t r = 0; r < n; ++r) {
          const auto& c = reqs[rows[size_t(by_len[c0 + size_t(r)])]].continuation;
          for (size_t t = 0; t + 1 < c.size(); ++t) {
            xa[r][int64_t(t)] = c[t];
            flat.push_back(r * Cm + int64_t(t));
          }
        }
        const at::Tensor logits = logits_at(model, model.hidden_states(cont.to(model.device()), &per_request), flat);
        int64_t row = 0;
        for (int64_t r = 0; r < n; ++r) {
          const int64_t C = int64_t(reqs[rows[size_t(by_len[c0 + size_t(r)])]].continuation.size());
          rest[size_t(r)] = logits.narrow(0, row, C - 1);
          row += C - 1;
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        const int64_t rr = by_len[c0 + size_t(r)];
        const size_t i = rows[size_t(rr)];
        at::Tensor logits = first.narrow(0, owner[size_t(rr)], 1);  // [1, V]
        if (rest[size_t(r)].defined() && rest[size_t(r)].size(0) > 0) logits = at::cat({logits, rest[size_t(r)]}, 0);
        Loglikelihood ll = score_rows(logits, reqs[i].continuation);
        ll.input_len = int64_t(prep[i].input.size());
        out[i] = ll;
      }
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
