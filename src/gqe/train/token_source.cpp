#include "gqe/train/token_source.h"

namespace gqe {

LoaderTokenSource::LoaderTokenSource(std::unique_ptr<TokenLoader> loader, std::string name)
    : loader_(std::move(loader)), name_(std::move(name)) {}

std::string LoaderTokenSource::describe() const {
  return name_ + " (" + std::to_string(loader_->total_tokens()) + " tokens, " + std::to_string(loader_->num_windows()) +
         " windows, " + std::to_string(loader_->steps_per_epoch()) + " steps/epoch)";
}

TextTokenSource::TextTokenSource(std::shared_ptr<const std::vector<int64_t>> tokens, int64_t seq_len,
                                 int64_t batch_size, uint64_t seed, int rank, int world_size, const std::string& name)
    : LoaderTokenSource(
          std::make_unique<TokenLoader>(std::move(tokens), name, seq_len, batch_size, seed, rank, world_size), name) {}

std::unique_ptr<TokenSource> make_shard_source(const std::vector<std::string>& shards, int64_t seq_len,
                                               int64_t batch_size, uint64_t seed, int rank, int world_size,
                                               int64_t token_limit) {
  auto loader = std::make_unique<TokenLoader>(shards, seq_len, batch_size, seed, rank, world_size);
  std::string name = std::to_string(shards.size()) + " shard(s)";
  if (token_limit > 0) {
    loader->limit_tokens(uint64_t(token_limit));
    name += ", their first " + std::to_string(token_limit) + " tokens";
  }
  return std::make_unique<LoaderTokenSource>(std::move(loader), name);
}

}  // namespace gqe
