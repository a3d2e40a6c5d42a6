// TokenLoader: fixed-length training windows over token shards (or a token vector in memory), in a
// seeded order, split over ranks. The one implementation of gqe's training data order: `gqe train` on
// shards and on a text file both read through it.
//
// Windows: shard k with N_k tokens holds floor((N_k - 1) / T) windows; window j covers tokens
// [j*T, j*T + T] (T + 1 tokens: inputs are the first T, targets the last T). Windows never cross a
// shard boundary, so consecutive windows share exactly one token and no token is used twice as a target.
//
// Order: the windows of all shards are numbered 0..W-1 in shard order; epoch e visits them in the order
// of a pseudo-random permutation that depends only on (seed, e) (a keyed Feistel bijection, no table,
// so it costs O(1) memory for billions of tokens and is identical on every machine and libc).
//
// Ranks: with world_size R and per-rank batch B the global batch is G = R*B windows. Step s of an epoch
// takes permutation positions [s*G, (s+1)*G); rank r takes the contiguous slice [s*G + r*B, s*G + (r+1)*B).
// So the R ranks' batches at step s, stacked in rank order, are exactly the batch a single process with
// batch R*B gets at step s: a data-parallel run sees the same data as a one-process run.
// An epoch has floor(W / G) steps (the last partial global batch is dropped so every rank steps alike);
// then the epoch advances and a new permutation starts.
//
// State: (epoch, step) of the NEXT batch; restore() sets it, so a resumed run continues with the very
// same batches. The state is the same on every rank.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gqe/data/shard.h"

namespace gqe {

struct LoaderState {
  uint64_t epoch = 0;
  uint64_t step = 0;
};  // enough to resume exactly

class TokenLoader {
 public:
  // shards: token shard paths (ours or llm.c .bin, detected by magic). Fixed-length windows of seq_len+1
  // tokens; each of world_size ranks reads its own disjoint slice; order is a deterministic function of
  // (seed, epoch) only. batch_size is per rank.
  // Throws gqe::Error if a shard is invalid or the shards hold fewer than world_size*batch_size windows.
  TokenLoader(std::vector<std::string> shards, int64_t seq_len, int64_t batch_size, uint64_t seed, int rank = 0,
              int world_size = 1);
  // The same over tokens in memory (one segment, as if one shard); `name` (e.g. the text file) starts
  // error messages.
  TokenLoader(std::shared_ptr<const std::vector<int64_t>> tokens, const std::string& name, int64_t seq_len,
              int64_t batch_size, uint64_t seed, int rank = 0, int world_size = 1);
  ~TokenLoader();

  // inputs [B, T] int64, targets [B, T] int64 (next tokens); advances the state by one step.
  std::pair<at::Tensor, at::Tensor> next();
  LoaderState state() const { return state_; }
  void restore(const LoaderState& s);
  int64_t total_tokens() const;  // tokens in all shards (not only those inside windows), up to the limit

  int64_t num_windows() const { return static_cast<int64_t>(total_windows_); }  // W
  int64_t steps_per_epoch() const { return static_cast<int64_t>(steps_per_epoch_); }
  int64_t tokens_per_step() const { return global_batch_ * seq_len_; }  // all ranks together: G*T
  uint64_t vocab_size() const { return vocab_size_; }  // max over gqe shards' headers; 0 = unknown
  // Every token of every shard (or of the tokens in memory) must be below `vocab_size`; throws
  // gqe::FormatError naming the shard, the offset and the id otherwise (data/shard.h check_token_ids).
  void check_token_ids(int64_t vocab_size) const;
  // Keeps only the first `max_tokens` tokens (over the shards in order) for windows: a data-limited run
  // that repeats a fixed prefix of the corpus every epoch. Call before the first next(). Throws gqe::Error
  // when they give fewer windows than one global batch.
  void limit_tokens(uint64_t max_tokens);
  // The window index (0..W-1) at permutation position `pos` of epoch `epoch`: exposed for tests/tools.
  uint64_t window_at(uint64_t epoch, uint64_t pos) const;

 private:
  struct Segment;  // a run of tokens that windows are cut from: one shard, or the in-memory tokens
  void check_arguments() const;
  void cut_windows(const std::string& what);  // fills window_begin_, totals, steps_per_epoch_

  std::vector<std::unique_ptr<Segment>> segments_;
  std::vector<uint64_t> window_begin_;  // first global window index of each segment, plus W at the end
  int64_t seq_len_, batch_size_, global_batch_;
  uint64_t seed_;
  int rank_, world_size_;
  uint64_t total_windows_ = 0, total_tokens_ = 0, steps_per_epoch_ = 0, vocab_size_ = 0;
  uint64_t token_limit_ = 0;  // 0: every token; else windows come from the first token_limit_ tokens only
  LoaderState state_;
};

// A keyed pseudo-random permutation of [0, n): Feistel network on the smallest even power of two >= n,
// with cycle walking. Deterministic in (n, key); O(1) memory.
class IndexPermutation {
 public:
  IndexPermutation(uint64_t n, uint64_t key);
  uint64_t operator()(uint64_t i) const;
  uint64_t size() const { return n_; }

 private:
  uint64_t round_fn(uint64_t x, int round) const;
  uint64_t n_, keys_[4];
  int half_bits_;
  uint64_t half_mask_;
};

}  // namespace gqe
