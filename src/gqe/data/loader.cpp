#include "gqe/data/loader.h"

#include <algorithm>
#include <cstdlib>

#include "gqe/core/error.h"

namespace gqe {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// IndexPermutation

IndexPermutation::IndexPermutation(uint64_t n, uint64_t key) : n_(n) {
  half_bits_ = 1;
  while (half_bits_ < 32 && (uint64_t(1) << (2 * half_bits_)) < n) ++half_bits_;
  half_mask_ = (uint64_t(1) << half_bits_) - 1;
  uint64_t k = key;
  for (auto& rk : keys_) rk = k = splitmix64(k);
}

uint64_t IndexPermutation::round_fn(uint64_t x, int round) const {
  return splitmix64(x ^ keys_[round]) & half_mask_;
}

uint64_t IndexPermutation::operator()(uint64_t i) const {
  if (i >= n_) throw Error("IndexPermutation: index " + std::to_string(i) + " out of range " + std::to_string(n_));
  // Feistel rounds are a bijection on [0, 4^half_bits); walking the cycle until the value lands back in
  // [0, n) restricts it to a bijection on [0, n). The domain is < 4n, so walks are short on average.
  uint64_t x = i;
  do {
    uint64_t left = x >> half_bits_, right = x & half_mask_;
    for (int r = 0; r < 4; ++r) {
      const uint64_t next = left ^ round_fn(right, r);
      left = right;
      right = next;
    }
    x = (left << half_bits_) | right;
  } while (x >= n_);
  return x;
}

// ---------------------------------------------------------------------------------------------------
// TokenLoader

struct TokenLoader::Segment {
  std::unique_ptr<TokenShard> shard;                   // a shard on disk,
  std::shared_ptr<const std::vector<int64_t>> tokens;  // or tokens in memory,
  std::string name;                                     // named so (e.g. the text file)
  uint64_t num_tokens() const { return shard ? shard->num_tokens() : uint64_t(tokens->size()); }
  void read(uint64_t begin, uint64_t count, int64_t* out) const {
    if (shard) shard->read(begin, count, out);
    else std::copy_n(tokens->data() + begin, count, out);
  }
};

TokenLoader::TokenLoader(std::vector<std::string> shards, int64_t seq_len, int64_t batch_size, uint64_t seed,
                         int rank, int world_size)
    : seq_len_(seq_len), batch_size_(batch_size), global_batch_(batch_size * world_size), seed_(seed), rank_(rank),
      world_size_(world_size) {
  if (shards.empty()) throw Error("data loader: no token shards given");
  check_arguments();
  // Checksumming reads every shard once (several GB/s); GQE_SKIP_SHARD_CHECKSUM=1 skips it for corpora so
  // large that this matters (sizes and headers are still checked).
  const char* skip = std::getenv("GQE_SKIP_SHARD_CHECKSUM");
  const bool verify = !(skip && *skip && std::string(skip) != "0");
  for (const auto& p : shards) {
    auto seg = std::make_unique<Segment>();
    seg->shard = std::make_unique<TokenShard>(p, verify);
    vocab_size_ = std::max(vocab_size_, seg->shard->vocab_size());
    segments_.push_back(std::move(seg));
  }
  cut_windows("data loader: " + std::to_string(shards.size()) + " shard(s)");
}

TokenLoader::TokenLoader(std::shared_ptr<const std::vector<int64_t>> tokens, const std::string& name, int64_t seq_len,
                         int64_t batch_size, uint64_t seed, int rank, int world_size)
    : seq_len_(seq_len), batch_size_(batch_size), global_batch_(batch_size * world_size), seed_(seed), rank_(rank),
      world_size_(world_size) {
  if (!tokens) throw Error(name + ": no tokens given");
  check_arguments();
  auto seg = std::make_unique<Segment>();
  seg->tokens = std::move(tokens);
  seg->name = name;
  segments_.push_back(std::move(seg));
  cut_windows(name);
}

void TokenLoader::check_arguments() const {
  if (seq_len_ < 1) throw Error("data loader: seq_len must be >= 1, got " + std::to_string(seq_len_));
  if (batch_size_ < 1) throw Error("data loader: batch_size must be >= 1, got " + std::to_string(batch_size_));
  if (world_size_ < 1 || rank_ < 0 || rank_ >= world_size_)
    throw Error("data loader: rank " + std::to_string(rank_) + " not in [0, world_size=" + std::to_string(world_size_) +
                ")");
}

void TokenLoader::limit_tokens(uint64_t max_tokens) {
  if (max_tokens == 0) throw Error("data loader: a token limit must be positive");
  token_limit_ = max_tokens;
  total_windows_ = total_tokens_ = steps_per_epoch_ = 0;
  cut_windows("data loader: the first " + std::to_string(max_tokens) + " tokens");
}

void TokenLoader::cut_windows(const std::string& what) {
  window_begin_.assign(1, 0);
  uint64_t left = token_limit_ ? token_limit_ : UINT64_MAX;
  for (const auto& seg : segments_) {
    const uint64_t n = std::min(seg->num_tokens(), left);
    left -= n;
    total_tokens_ += n;
    if (n > 0) total_windows_ += (n - 1) / static_cast<uint64_t>(seq_len_);
    window_begin_.push_back(total_windows_);
  }
  steps_per_epoch_ = total_windows_ / static_cast<uint64_t>(global_batch_);
  if (steps_per_epoch_ == 0)
    throw Error(what + ": " + std::to_string(total_tokens_) + " tokens give " + std::to_string(total_windows_) +
                " windows of " + std::to_string(seq_len_ + 1) + " tokens, fewer than one global batch of " +
                std::to_string(global_batch_) + " (" + std::to_string(world_size_) + " rank(s) x batch " +
                std::to_string(batch_size_) + "); use more data, a smaller batch or a shorter sequence");
}

TokenLoader::~TokenLoader() = default;

void TokenLoader::check_token_ids(int64_t vocab_size) const {
  for (const auto& seg : segments_) {
    if (seg->shard) gqe::check_token_ids(*seg->shard, vocab_size);
    else gqe::check_token_ids(seg->tokens->data(), seg->tokens->size(), vocab_size, seg->name);
  }
}

int64_t TokenLoader::total_tokens() const { return static_cast<int64_t>(total_tokens_); }

void TokenLoader::restore(const LoaderState& s) {
  if (s.step >= steps_per_epoch_)
    throw Error("data loader: cannot restore step " + std::to_string(s.step) + " of an epoch with " +
                std::to_string(steps_per_epoch_) + " steps (was the data or the batch size changed?)");
  state_ = s;
}

// The key mixes seed and epoch so that every epoch has an independent order.
static uint64_t epoch_key(uint64_t seed, uint64_t epoch) {
  return splitmix64(seed) ^ splitmix64(epoch * 0x632be59bd9b4e019ull + 1);
}

uint64_t TokenLoader::window_at(uint64_t epoch, uint64_t pos) const {
  return IndexPermutation(total_windows_, epoch_key(seed_, epoch))(pos);
}

std::pair<at::Tensor, at::Tensor> TokenLoader::next() {
  const IndexPermutation perm(total_windows_, epoch_key(seed_, state_.epoch));
  const int64_t T = seq_len_;
  at::Tensor inputs = at::empty({batch_size_, T}, at::kLong);   // [B, T]
  at::Tensor targets = at::empty({batch_size_, T}, at::kLong);  // [B, T]
  int64_t* in = inputs.data_ptr<int64_t>();
  int64_t* tg = targets.data_ptr<int64_t>();
  std::vector<int64_t> window(static_cast<size_t>(T + 1));
  const uint64_t first = state_.step * static_cast<uint64_t>(global_batch_) +
                         static_cast<uint64_t>(rank_) * static_cast<uint64_t>(batch_size_);
  for (int64_t b = 0; b < batch_size_; ++b) {
    const uint64_t w = perm(first + static_cast<uint64_t>(b));
    // Segment holding window w: the last segment whose first window index is <= w.
    const size_t k = static_cast<size_t>(std::upper_bound(window_begin_.begin(), window_begin_.end(), w) -
                                         window_begin_.begin()) - 1;
    const uint64_t local = w - window_begin_[k];
    segments_[k]->read(local * static_cast<uint64_t>(T), static_cast<uint64_t>(T + 1), window.data());
    std::copy(window.begin(), window.end() - 1, in + b * T);
    std::copy(window.begin() + 1, window.end(), tg + b * T);
  }
  if (++state_.step == steps_per_epoch_) {
    state_.step = 0;
    ++state_.epoch;
  }
  return {inputs, targets};
}

}  // namespace gqe
