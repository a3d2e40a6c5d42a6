// Validation loss and perplexity of a checkpoint on held-out tokens.
//
// Evaluation data: token shards as src/gqe/data/shard.h reads them (gqe shards, "GQETOKS"; llm.c .bin shards,
// magic 20240520 -> uint16 tokens, 20240801 -> uint32 tokens), or any other file as UTF-8 text encoded
// with the tokenizer.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gqe/tokenizers/tokenizer.h"
#include "gqe/model/transformer.h"

namespace gqe::eval {

struct EvalTokens {  // the tokens of an evaluation data file
  std::vector<int64_t> tokens;
  std::string kind;      // "gqe uint16 shard", "llm.c uint16 shard", ..., "text"
  int64_t text_bytes = 0;  // bytes of text behind the tokens (text sources only; 0 otherwise)
};

// A token shard (gqe or llm.c) is recognised by its magic; a path ending in .tok or .bin must be one (a
// damaged magic is an error, not text). Anything else is text, encoded with `tok`.
// max_tokens > 0 keeps only the first max_tokens tokens (text: the bytes counted are those of the
// kept prefix, re-measured by decoding). Throws gqe::FormatError on a truncated or inconsistent shard.
EvalTokens load_eval_tokens(const std::string& path, const Tokenizer& tok, int64_t max_tokens = 0);

struct ValLossResult {
  double loss = 0;         // mean next-token cross-entropy (nats) over every predicted token
  double perplexity = 0;   // exp(loss)
  double bits_per_byte = 0;  // sum of nats / ln 2 / text bytes (text sources only; 0 otherwise)
  double aux_loss = 0;     // load-balancing loss summed over layers, mean over forward passes (GQE)
  int64_t predicted_tokens = 0;
  int64_t windows = 0;
  std::vector<double> window_nats;     // per window, in eval_windows order: the sum of its tokens' nats
  std::vector<int64_t> window_tokens;  // per window: the tokens it predicts
};

// Non-overlapping windows: window w feeds tokens [w*T, w*T+T) and predicts [w*T+1, w*T+T]; the last,
// shorter window predicts the rest, so every token but the first is predicted exactly once.
ValLossResult validation_loss(LanguageModel& model, const std::vector<int64_t>& tokens, int64_t seq_len,
                              int64_t batch_size, int64_t text_bytes = 0,
                              const std::function<void(int64_t, int64_t)>& progress = {});

// Windows as above: [start, length] of each input (length = tokens fed; targets are shifted by one).
std::vector<std::pair<int64_t, int64_t>> eval_windows(int64_t n_tokens, int64_t seq_len);

}  // namespace gqe::eval
