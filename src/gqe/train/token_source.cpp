#include "gqe/train/token_source.h"

#include <algorithm>
#include <random>

#include "gqe/core/error.h"
#include "gqe/data/loader.h"

namespace gqe {

TextTokenSource::TextTokenSource(std::shared_ptr<const std::vector<int64_t>> tokens, int64_t seq_len,
                                 int64_t batch_size, uint64_t seed, int rank, int world_size, std::string name)
    : tokens_(std::move(tokens)), T_(seq_len), B_(batch_size), seed_(seed), rank_(rank), world_(world_size),
      name_(std::move(name)) {
  windows_ = tokens_->size() > 1 ? int64_t(tokens_->size() - 1) / T_ : 0;
  steps_per_epoch_ = windows_ / (B_ * world_);
  if (steps_per_epoch_ < 1)
    throw Error(name_ + ": " + std::to_string(tokens_->size()) + " tokens make " + std::to_string(windows_) +
                " windows of " + std::to_string(T_) + "+1 tokens, fewer than one global batch of " +
                std::to_string(B_ * world_) + " (batch " + std::to_string(B_) + " x " + std::to_string(world_) +
                " ranks); use more data or a smaller --batch/--seq");
}

// A seeded Fisher-Yates permutation of the windows per epoch (own loop over mt19937_64, whose output is
// fixed by the standard, so the order is the same with every standard library).
const std::vector<uint64_t>& TextTokenSource::order(uint64_t epoch) {
  if (epoch != cached_epoch_) {
    order_.resize(size_t(windows_));
    for (int64_t i = 0; i < windows_; ++i) order_[size_t(i)] = uint64_t(i);
    std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + epoch + 1);
    for (int64_t i = windows_ - 1; i > 0; --i) {
      const uint64_t j = rng() % uint64_t(i + 1);
      std::swap(order_[size_t(i)], order_[size_t(j)]);
    }
    cached_epoch_ = epoch;
  }
  return order_;
}

std::pair<at::Tensor, at::Tensor> TextTokenSource::next() {
  const auto& ord = order(pos_.epoch);
  at::Tensor x = at::empty({B_, T_}, at::kLong), y = at::empty({B_, T_}, at::kLong);
  int64_t* xp = x.data_ptr<int64_t>();
  int64_t* yp = y.data_ptr<int64_t>();
  const uint64_t base = pos_.step * uint64_t(B_ * world_) + uint64_t(rank_ * B_);
  for (int64_t b = 0; b < B_; ++b) {
    const int64_t start = int64_t(ord[base + uint64_t(b)]) * T_;
    const int64_t* src = tokens_->data() + start;
    std::copy(src, src + T_, xp + b * T_);
    std::copy(src + 1, src + T_ + 1, yp + b * T_);
  }
  if (++pos_.step == uint64_t(steps_per_epoch_)) {
    pos_.step = 0;
    ++pos_.epoch;
  }
  return {x, y};
}

void TextTokenSource::restore(const DataPosition& p) {
  if (p.step >= uint64_t(steps_per_epoch_))
    throw Error(name_ + ": cannot restore data position step " + std::to_string(p.step) + ": an epoch has " +
                std::to_string(steps_per_epoch_) + " steps (different data, batch or world size?)");
  pos_ = p;
}

std::string TextTokenSource::describe() const {
  return name_ + " (" + std::to_string(tokens_->size()) + " tokens, " + std::to_string(windows_) + " windows, " +
         std::to_string(steps_per_epoch_) + " steps/epoch)";
}

namespace {
class ShardTokenSource : public TokenSource {
 public:
  ShardTokenSource(const std::vector<std::string>& shards, int64_t T, int64_t B, uint64_t seed, int rank, int world)
      : loader_(shards, T, B, seed, rank, world), n_(shards.size()) {}
  std::pair<at::Tensor, at::Tensor> next() override { return loader_.next(); }
  DataPosition position() const override {
    const LoaderState s = loader_.state();
    return {s.epoch, s.step};
  }
  void restore(const DataPosition& p) override {
    LoaderState s;
    s.epoch = p.epoch;
    s.step = p.step;
    loader_.restore(s);
  }
  int64_t total_tokens() const override { return loader_.total_tokens(); }
  std::string describe() const override {
    return std::to_string(n_) + " shard(s) (" + std::to_string(loader_.total_tokens()) + " tokens, " +
           std::to_string(loader_.num_windows()) + " windows, " + std::to_string(loader_.steps_per_epoch()) +
           " steps/epoch)";
  }
  int64_t vocab_size() const override { return int64_t(loader_.vocab_size()); }

 private:
  TokenLoader loader_;
  size_t n_;
};
}  // namespace

std::unique_ptr<TokenSource> make_shard_source(const std::vector<std::string>& shards, int64_t seq_len,
                                               int64_t batch_size, uint64_t seed, int rank, int world_size) {
  return std::make_unique<ShardTokenSource>(shards, seq_len, batch_size, seed, rank, world_size);
}

}  // namespace gqe
