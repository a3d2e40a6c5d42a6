#include "gqe/eval/val_loss.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/data/shard.h"

namespace gqe::eval {

EvalTokens load_eval_tokens(const std::string& path, const Tokenizer& tok, int64_t max_tokens) {
  fs::check_regular_file(path);  // before peeking at the magic: a FIFO would block, /dev/zero never end
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  char head[8] = {0};
  f.read(head, 8);
  const size_t got = size_t(f.gcount());
  EvalTokens src;
  int32_t magic = 0;
  if (got >= 4) std::memcpy(&magic, head, 4);
  const bool gqe_shard = got == 8 && std::memcmp(head, kShardMagic, 8) == 0;
  // A .tok/.bin path is a shard or an error: one with a damaged magic must not be scored as text.
  const std::string ext = std::filesystem::path(path).extension().string();
  const bool shard_name = ext == ".tok" || ext == ".bin";
  if (shard_name || gqe_shard || magic == kLlmcMagicGpt2 || magic == kLlmcMagicLlama3) {
    // A token shard: TokenShard validates the magic, the header, the size and (gqe shards) the checksums.
    TokenShard shard(path);
    src.kind = std::string(shard.format() == ShardFormat::kGqe ? "gqe" : "llm.c") +
               (shard.dtype() == TokenDtype::kUInt16 ? " uint16" : " uint32") + " shard";
    const uint64_t n = max_tokens > 0 ? std::min<uint64_t>(shard.num_tokens(), uint64_t(max_tokens)) : shard.num_tokens();
    src.tokens.resize(n);
    shard.read(0, n, src.tokens.data());
    if (src.tokens.size() < 2) throw FormatError(path + ": fewer than 2 tokens; nothing to predict");
    return src;
  }
  const std::string bytes = fs::read_file(path);
  src.kind = "text";
  src.tokens = tok.encode(bytes);
  src.text_bytes = int64_t(bytes.size());
  if (max_tokens > 0 && int64_t(src.tokens.size()) > max_tokens) {
    src.tokens.resize(size_t(max_tokens));
    src.text_bytes = int64_t(tok.decode(src.tokens).size());
  }
  if (src.tokens.size() < 2) throw FormatError(path + ": fewer than 2 tokens; nothing to predict");
  return src;
}

std::vector<std::pair<int64_t, int64_t>> eval_windows(int64_t n, int64_t T) {
  std::vector<std::pair<int64_t, int64_t>> w;
  for (int64_t s = 0; s + 1 < n; s += T) w.emplace_back(s, std::min(T, n - 1 - s));
  return w;
}

ValLossResult validation_loss(LanguageModel& model, const std::vector<int64_t>& tokens, int64_t seq_len,
                              int64_t batch_size, int64_t text_bytes,
                              const std::function<void(int64_t, int64_t)>& progress) {
  if (seq_len <= 0 || batch_size <= 0) throw Error("validation loss: sequence length and batch size must be positive");
  if (seq_len > model.config().max_position_embeddings)
    throw Error("validation loss: sequence length " + std::to_string(seq_len) + " exceeds max_position_embeddings " +
                std::to_string(model.config().max_position_embeddings));
  const int64_t V = model.config().vocab_size;
  check_token_ids(tokens.data(), tokens.size(), V, "validation loss");
  const at::Tensor all = at::tensor(tokens, at::kLong);  // [N]; host: windows are copied to the model
  const auto windows = eval_windows(int64_t(tokens.size()), seq_len);
  torch::NoGradGuard no_grad;
  model.eval();
  ValLossResult r;
  double nats = 0, aux = 0;
  int64_t passes = 0;
  // Full windows go in batches; windows of different length are never padded together (no masking needed).
  size_t i = 0;
  while (i < windows.size()) {
    size_t j = i;
    while (j < windows.size() && int64_t(j - i) < batch_size && windows[j].second == windows[i].second) ++j;
    const int64_t L = windows[i].second;
    std::vector<at::Tensor> xs, ys;
    for (size_t w = i; w < j; ++w) {
      xs.push_back(all.narrow(0, windows[w].first, L));
      ys.push_back(all.narrow(0, windows[w].first + 1, L));
    }
    LMOutput out = model.forward(at::stack(xs).to(model.device()));  // [B, L, V]
    const at::Tensor y = at::stack(ys).to(model.device());           // [B, L]
    // Per window (its own sum of nats) so that a caller can estimate how much the choice of held-out windows
    // moves the mean: [B] in double, on the host.
    const at::Tensor per_window =
        at::cross_entropy_loss(out.logits.reshape({-1, V}), y.reshape({-1}), {}, at::Reduction::None)
            .reshape({int64_t(j - i), L})
            .to(at::kDouble)
            .sum(1)
            .cpu();
    for (int64_t w = 0; w < int64_t(j - i); ++w) {
      r.window_nats.push_back(per_window[w].item<double>());
      r.window_tokens.push_back(L);
      nats += r.window_nats.back();
    }
    aux += out.aux_loss.item<double>();
    ++passes;
    r.predicted_tokens += int64_t(j - i) * L;
    i = j;
    if (progress) progress(int64_t(i), int64_t(windows.size()));
  }
  r.windows = int64_t(windows.size());
  r.loss = nats / double(r.predicted_tokens);
  r.perplexity = std::exp(r.loss);
  r.aux_loss = passes ? aux / double(passes) : 0.0;
  if (text_bytes > 0) r.bits_per_byte = nats / std::log(2.0) / double(text_bytes);
  return r;
}

}  // namespace gqe::eval
