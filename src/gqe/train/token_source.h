// Where training batches come from. The trainer sees only this interface; two implementations:
//   TextTokenSource   an in-memory token vector (byte-tokenized text for `gqe train --data FILE`),
//   ShardTokenSource  token shards through gqe::TokenLoader (src/gqe/data/loader.h).
// Both follow the same contract as TokenLoader: fixed windows of seq_len+1 tokens, window j covering
// tokens [j*T, j*T+T]; epoch e visits windows in a permutation fixed by (seed, e); a step of the global
// batch G = world*B takes permutation positions [s*G, (s+1)*G) and rank r takes [s*G + r*B, s*G + (r+1)*B).
// The position (epoch, step) is the whole state, so a checkpoint stores it and resume continues exactly.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gqe {

struct DataPosition {
  uint64_t epoch = 0;
  uint64_t step = 0;  // of the NEXT batch
};

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
};

class TextTokenSource : public TokenSource {
 public:
  // Throws gqe::Error when the tokens hold fewer than world_size * batch_size windows.
  TextTokenSource(std::shared_ptr<const std::vector<int64_t>> tokens, int64_t seq_len, int64_t batch_size,
                  uint64_t seed, int rank = 0, int world_size = 1, std::string name = "text");
  std::pair<at::Tensor, at::Tensor> next() override;
  DataPosition position() const override { return pos_; }
  void restore(const DataPosition& p) override;
  int64_t total_tokens() const override { return int64_t(tokens_->size()); }
  std::string describe() const override;
  int64_t steps_per_epoch() const { return steps_per_epoch_; }

 private:
  const std::vector<uint64_t>& order(uint64_t epoch);
  std::shared_ptr<const std::vector<int64_t>> tokens_;
  int64_t T_, B_;
  uint64_t seed_;
  int rank_, world_;
  int64_t windows_ = 0, steps_per_epoch_ = 0;
  DataPosition pos_;
  uint64_t cached_epoch_ = ~uint64_t(0);
  std::vector<uint64_t> order_;
  std::string name_;
};

// Shards through TokenLoader; `shards` are paths (expand user specs with data/shard.h resolve_shard_paths).
std::unique_ptr<TokenSource> make_shard_source(const std::vector<std::string>& shards, int64_t seq_len,
                                               int64_t batch_size, uint64_t seed, int rank, int world_size);

}  // namespace gqe
