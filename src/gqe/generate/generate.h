// Autoregressive generation with the KV cache: prefill the prompt once, then one token per step.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "gqe/model/transformer.h"

namespace gqe {

struct SamplingOptions {
  int64_t max_new_tokens = 128;
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off (nucleus sampling otherwise)
  uint64_t seed = 0;
  int64_t stop_token = -1;   // stop after emitting this token (-1: none)
  // > 0: only ids below this are sampled (the tokenizer's vocabulary, when the model's embedding is padded
  // past it, e.g. 50304 rows for GPT-2's 50257 tokens: the padding rows decode to nothing).
  int64_t vocab_limit = 0;
};

// Picks the next token from logits [V] (float). Deterministic for a given rng state.
int64_t sample_token(const at::Tensor& logits, const SamplingOptions& opt, uint64_t& rng_state);

// How many new tokens fit after a prompt of `prompt_tokens` in the model's context (max_position_embeddings):
// every token but the last generated one is fed to the model. Below 1 when the prompt overfills the context.
int64_t max_new_tokens_after(const ModelConfig& config, int64_t prompt_tokens);

// Returns the new tokens only, at most max_new_tokens_after(prompt) of them: generation stops at the end of
// the context (no sliding window). A prompt longer than the context is an error (gqe::Error).
// on_token (optional) is called with each token as it is produced.
std::vector<int64_t> generate(LanguageModel& model, const std::vector<int64_t>& prompt, const SamplingOptions& opt,
                              const std::function<void(int64_t)>& on_token = nullptr);

// Several prompts of any lengths generated together: one right-padded prefill of all of them, then each step
// decodes one token for every sequence against a ragged KV cache (each attends to its own tokens only;
// kv_cache.h). Every sequence samples as generate() would on its own prompt with the same options (its own
// random stream from opt.seed) and stops on the same conditions; returns each prompt's new tokens. Greedy
// decoding gives generate()'s tokens up to the rounding of batched matrix products.
std::vector<std::vector<int64_t>> generate_batch(LanguageModel& model, const std::vector<std::vector<int64_t>>& prompts,
                                                 const SamplingOptions& opt);

}  // namespace gqe
