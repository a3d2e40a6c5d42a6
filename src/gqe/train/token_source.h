// Where training batches come from. The trainer sees only this interface. Both implementations read
// through gqe::TokenLoader (src/gqe/data/loader.h), the one home of the windowing, the seeded order and
// the rank split:
//   TextTokenSource   an in-memory token vector (byte-tokenized text for `gqe train --data FILE`),
//   make_shard_source token shards on disk.
// Fixed windows of seq_len+1 tokens; epoch e visits them in an order fixed by (seed, e); rank r of a
// global batch G = world*B takes its contiguous slice. The position (epoch, step) is the whole state, so a
// checkpoint stores it and resume continues exactly.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gqe/data/loader.h"

namespace gqe {

using DataPosition = LoaderState;  // (epoch, step) of the NEXT batch

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // inputs [B, T] int64, targets [B, T] int64; advances one step.
  virtual std::pair<at::Tensor, at::Tensor> next() = 0;
  virtual DataPosition position() const = 0;
  virtual void restore(const DataPosition& p) = 0;
  virtual int64_t total_tokens() const = 0;
  virtual std::string describe() const = 0;
  virtual int64_t vocab_size() const { return 0; }  // largest id + 1 the data may hold; 0 = unknown
  // Throws gqe::FormatError naming where and which id when a token is not below `vocab_size`.
  virtual void check_token_ids(int64_t vocab_size) const = 0;
};

// A TokenSource over a TokenLoader; `name` starts describe() ("data/kjv.txt", "3 shard(s)").
class LoaderTokenSource : public TokenSource {
 public:
  LoaderTokenSource(std::unique_ptr<TokenLoader> loader, std::string name);
  std::pair<at::Tensor, at::Tensor> next() override { return loader_->next(); }
  DataPosition position() const override { return loader_->state(); }
  void restore(const DataPosition& p) override { loader_->restore(p); }
  int64_t total_tokens() const override { return loader_->total_tokens(); }
  std::string describe() const override;
  int64_t vocab_size() const override { return int64_t(loader_->vocab_size()); }
  void check_token_ids(int64_t vocab_size) const override { loader_->check_token_ids(vocab_size); }
  int64_t steps_per_epoch() const { return loader_->steps_per_epoch(); }

 private:
  std::unique_ptr<TokenLoader> loader_;
  std::string name_;
};

class TextTokenSource : public LoaderTokenSource {
 public:
  // Throws gqe::Error when the tokens hold fewer than world_size * batch_size windows.
  TextTokenSource(std::shared_ptr<const std::vector<int64_t>> tokens, int64_t seq_len, int64_t batch_size,
                  uint64_t seed, int rank = 0, int world_size = 1, const std::string& name = "text");
};

// Shards through TokenLoader; `shards` are paths (expand user specs with data/shard.h resolve_shard_paths).
// token_limit > 0 keeps only the shards' first token_limit tokens (TokenLoader::limit_tokens).
std::unique_ptr<TokenSource> make_shard_source(const std::vector<std::string>& shards, int64_t seq_len,
                                               int64_t batch_size, uint64_t seed, int rank, int world_size,
                                               int64_t token_limit = 0);

}  // namespace gqe
