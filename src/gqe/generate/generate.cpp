#include "gqe/generate/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "gqe/core/error.h"

namespace gqe {

namespace {
// splitmix64: a tiny, portable generator so samples do not depend on the libtorch version.
uint64_t next_u64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
double next_uniform(uint64_t& s) { return double(next_u64(s) >> 11) * (1.0 / 9007199254740992.0); }
}  // namespace

int64_t sample_token(const at::Tensor& logits_in, const SamplingOptions& opt, uint64_t& rng) {
  // Sampling reads the logits on the host, wherever the model ran.
  at::Tensor logits = logits_in.to(at::kCPU, at::kDouble).contiguous();
  const double* l = logits.data_ptr<double>();
  const int64_t V = opt.vocab_limit > 0 ? std::min<int64_t>(logits.numel(), opt.vocab_limit) : logits.numel();
  if (opt.temperature <= 0) return int64_t(std::max_element(l, l + V) - l);

  std::vector<int64_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return l[a] > l[b]; });
  int64_t keep = opt.top_k > 0 ? std::min(opt.top_k, V) : V;
  std::vector<double> p(keep);
  const double mx = l[idx[0]];
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += (p[i] = std::exp((l[idx[i]] - mx) / opt.temperature));
  for (auto& x : p) x /= sum;
  if (opt.top_p < 1.0) {  // smallest prefix whose mass reaches top_p
    double c = 0;
    int64_t n = 0;
    while (n < keep && (c < opt.top_p || n == 0)) c += p[n++];
    keep = n;
    p.resize(keep);
    for (auto& x : p) x /= c;
  }
  double u = next_uniform(rng), c = 0;
  for (int64_t i = 0; i < keep; ++i) {
    c += p[i];
    if (u < c) return idx[i];
  }
  return idx[keep - 1];
}

int64_t max_new_tokens_after(const ModelConfig& config, int64_t prompt_tokens) {
  return config.max_position_embeddings - prompt_tokens + 1;
}

namespace {

void check_prompt(const ModelConfig& config, const std::vector<int64_t>& prompt, const std::string& which) {
  if (prompt.empty()) throw Error("generate: " + which + " must contain at least one token");
  if (max_new_tokens_after(config, int64_t(prompt.size())) < 1)
    throw Error(which + " is " + std::to_string(prompt.size()) + " tokens, longer than the model's context of " +
                std::to_string(config.max_position_embeddings) + " tokens (max_position_embeddings): shorten it");
}

}  // namespace

std::vector<int64_t> generate(LanguageModel& model, const std::vector<int64_t>& prompt, const SamplingOptions& opt,
                              const std::function<void(int64_t)>& on_token) {
  check_prompt(model.config(), prompt, "the prompt");
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  KVCache cache = model.make_cache();
  uint64_t rng = opt.seed;
  std::vector<int64_t> out;
  const at::TensorOptions ids_on_device = at::TensorOptions(model.device()).dtype(at::kLong);
  at::Tensor input = at::tensor(prompt, at::kLong).unsqueeze(0).to(model.device());  // host: copied to the model
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    if (cache.length() + input.size(1) > model.config().max_position_embeddings) break;
    LMOutput o = model.forward(input, &cache);
    int64_t tok = sample_token(o.logits[0][o.logits.size(1) - 1], opt, rng);
    out.push_back(tok);
    if (on_token) on_token(tok);
    if (tok == opt.stop_token) break;
    input = at::full({1, 1}, tok, ids_on_device);
  }
  model.train(was_training);
  return out;
}

std::vector<std::vector<int64_t>> generate_batch(LanguageModel& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 const SamplingOptions& opt) {
  const int64_t B = int64_t(prompts.size()), context = model.config().max_position_embeddings;
  if (B == 0) return {};
  std::vector<int64_t> len(static_cast<size_t>(B));
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b) {
    check_prompt(model.config(), prompts[size_t(b)], "prompt " + std::to_string(b + 1));
    len[size_t(b)] = int64_t(prompts[size_t(b)].size());
    longest = std::max(longest, len[size_t(b)]);
  }
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  // Right-padded prefill: a real position never attends to the padding after it (causal attention). The
  // token ids are written on the host, then copied to the model's device in one transfer.
  const at::Device device = model.device();
  std::vector<int64_t> padded(size_t(B * longest), 0);
  for (int64_t b = 0; b < B; ++b)
    std::copy(prompts[size_t(b)].begin(), prompts[size_t(b)].end(), padded.begin() + b * longest);
  at::Tensor input = at::tensor(padded, at::kLong).view({B, longest}).to(device);  // host: copied to the model
  KVCache cache = model.make_cache();
  LMOutput o = model.forward(input, &cache);
  cache.set_lengths(len);
  // Each sequence's next-token logits [V], on the host (one transfer a step).
  std::vector<int64_t> last(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) last[size_t(b)] = b * longest + len[size_t(b)] - 1;
  at::Tensor rows = o.logits.reshape({B * longest, -1})
                        .index_select(0, at::tensor(last, at::kLong).to(device))  // host: copied to the model
                        .to(at::kCPU);
  std::vector<at::Tensor> next(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) next[size_t(b)] = rows[b];
  std::vector<uint64_t> rng(size_t(B), opt.seed);
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(B));
  std::vector<bool> done(size_t(B), opt.max_new_tokens < 1);
  for (;;) {
    std::vector<int64_t> step(size_t(B), 0);  // finished sequences feed padding, never read
    bool any = false;
    for (int64_t b = 0; b < B; ++b) {
      if (done[size_t(b)]) continue;
      const int64_t tok = sample_token(next[size_t(b)], opt, rng[size_t(b)]);
      out[size_t(b)].push_back(tok);
      // generate()'s stopping rules: the stop token, max_new_tokens, and the end of the context.
      done[size_t(b)] = tok == opt.stop_token || int64_t(out[size_t(b)].size()) >= opt.max_new_tokens ||
                        cache.layers[0].lengths()[size_t(b)] + 1 > context;
      step[size_t(b)] = tok;
      any = any || !done[size_t(b)];
    }
    if (!any) break;
    o = model.forward(at::tensor(step, at::kLong).view({B, 1}).to(device), &cache);  // host: copied to the model
    rows = o.logits.select(1, 0).to(at::kCPU);
    for (int64_t b = 0; b < B; ++b) next[size_t(b)] = rows[b];
  }
  model.train(was_training);
  return out;
}

}  // namespace gqe
