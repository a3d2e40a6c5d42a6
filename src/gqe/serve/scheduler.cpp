#include "gqe/serve/scheduler.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>

#include "gqe/attention/attention_dtype.h"
#include "gqe/core/runtime.h"
#include "gqe/kernels/gemv.h"
#include "gqe/serve/api.h"

namespace gqe::serve {

using Clock = std::chrono::steady_clock;

Request::Request(std::vector<SequenceSpec> s) : specs(std::move(s)), choices(specs.size()), submitted(Clock::now()) {}

bool Request::all_finished() const {
  return std::all_of(choices.begin(), choices.end(), [](const Choice& c) { return c.finished; });
}

void Request::cancel() { cancelled = true; }

void Request::stop_choice(size_t i) {
  std::lock_guard<std::mutex> lk(mu);
  choices.at(i).stop_requested = true;
}

struct Scheduler::Lane {
  std::vector<std::unique_ptr<Seq>> seqs;  // row b of cache is seqs[b]
  KVCache cache;
};

struct Scheduler::Seq {
  std::shared_ptr<Request> req;
  size_t choice = 0;
  const SequenceSpec* spec = nullptr;
  uint64_t rng = 0;
  KVCache cache;            // while prefilling: the sequence alone (a batch of one)
  int64_t prefilled = 0;    // prompt tokens in the cache
  int64_t length = 0;       // positions in the cache
  int64_t generated = 0;
  int64_t pending = 0;      // the last sampled token, fed at the next decode step
  bool done = false;
};

namespace {
// Time-to-first-token histogram bounds, seconds.
const std::vector<double> kTtftBounds = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}  // namespace

Scheduler::Scheduler(LanguageModel& model, const SchedulerOptions& opt)
    : model_(model), opt_(opt), device_(model.device()) {
  const ModelConfig& c = model.config();
  // The cache's element: the model's dtype, or bf16 where CPU attention keeps its cache in bf16 (--dtype).
  const at::ScalarType weights = model.embed_tokens->weight.scalar_type();
  const at::ScalarType cache = device_.is_cpu() && weights == at::kFloat ? cpu_attention_dtype() : weights;
  const int64_t elem = int64_t(c10::elementSize(cache));
  // K and V of every KV head, plus the cached mean K and V over the heads that GQE's shared head reads.
  bytes_per_position_ = c.num_hidden_layers * 2 * (c.attention.num_kv_heads + 1) * c.attention.head_dim * elem;
  stats_.kv_memory = opt.kv_memory;
  stats_.ttft_bounds = kTtftBounds;
  stats_.ttft_counts.assign(kTtftBounds.size() + 1, 0);
  stats_.batch_size_counts.assign(size_t(opt.max_batch + 1), 0);
  model_.eval();
  decode_rows_ = opt.decode_rows > 0 ? opt.decode_rows : device_.is_cpu() ? kernels::kLinearRowsMax : opt.max_batch;
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::submit(const std::shared_ptr<Request>& r) {
  int64_t need = 0;
  for (const SequenceSpec& s : r->specs) need += (int64_t(s.prompt.size()) + s.sampling.max_new_tokens) * bytes_per_position_;
  const int64_t n = int64_t(r->specs.size());
  std::lock_guard<std::mutex> lk(mu_);
  if (draining_ || stop_)
    throw ApiError(503, "the server is shutting down and takes no new requests", "server_error", "", "shutting_down");
  if (n > opt_.max_batch)
    throw ApiError(400, "n = " + std::to_string(n) + " choices is more than the server's batch of " +
                            std::to_string(opt_.max_batch) + " sequences (--max-batch)",
                   "invalid_request_error", "n", "invalid_value");
  if (need > opt_.kv_memory)
    throw ApiError(400, "the prompt and max_tokens need " + std::to_string(need) + " bytes of KV cache, more than the " +
                            "server's whole budget of " + std::to_string(opt_.kv_memory) +
                            " bytes (--kv-memory): shorten the prompt or lower max_tokens",
                   "invalid_request_error", "max_tokens", "kv_memory_exceeded");
  const bool fits_now = queue_.empty() && active_sequences_ + n <= opt_.max_batch &&
                        stats_.kv_reserved + need <= opt_.kv_memory;
  if (!fits_now && queued_sequences_ + n > opt_.max_queue) {
    ++stats_.requests_rejected;
    throw ApiError(429, "the server is busy (" + std::to_string(queued_sequences_) +
                            " sequences already wait for KV memory or a batch slot): retry later",
                   "rate_limit_error", "", "rate_limit_exceeded");
  }
  r->reserved = need;
  queue_.push_back(r);
  queued_sequences_ += n;
  cv_.notify_all();
}

bool Scheduler::admit() {
  bool any = false;
  while (!queue_.empty()) {
    std::shared_ptr<Request> r = queue_.front();
    const int64_t n = int64_t(r->specs.size());
    if (r->cancelled || stop_) {
      queue_.pop_front();
      queued_sequences_ -= n;
      {
        std::lock_guard<std::mutex> lk(r->mu);
        for (auto& c : r->choices) c.finished = true, c.finish_reason = "cancelled";
      }
      r->cv.notify_all();
      ++stats_.requests_cancelled;
      continue;
    }
    if (running() + int64_t(prefilling_.size()) + n > opt_.max_batch ||
        stats_.kv_reserved + r->reserved > opt_.kv_memory)
      break;  // in arrival order: a large request is not overtaken by smaller ones forever
    queue_.pop_front();
    queued_sequences_ -= n;
    stats_.kv_reserved += r->reserved;
    active_sequences_ += n;
    ++stats_.requests_admitted;
    for (size_t i = 0; i < r->specs.size(); ++i) {
      auto s = std::make_unique<Seq>();
      s->req = r;
      s->choice = i;
      s->spec = &r->specs[i];
      s->rng = s->spec->sampling.seed;
      s->cache = model_.make_cache();
      prefilling_.push_back(std::move(s));
    }
    any = true;
  }
  return any;
}

void Scheduler::loop() {
  configure_threads(opt_.threads);  // OpenMP's thread count is per calling thread
  torch::NoGradGuard no_grad;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      admit();
      stats_.running = running();
      stats_.prefilling = int64_t(prefilling_.size());
      stats_.queued = queued_sequences_;
      int64_t used = 0;
      for (auto& l : lanes_)
        for (auto& s : l.seqs) used += s->length;
      for (auto& s : prefilling_) used += s->length;
      stats_.kv_used_positions = used;
      if (stop_ && lanes_.empty() && prefilling_.empty()) break;
      if (lanes_.empty() && prefilling_.empty()) {
        cv_.notify_all();  // drain() waits for this
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        continue;
      }
    }
    try {
      step();
    } catch (const std::exception& e) {
      // A failing forward (out of memory, say) ends the sequences in flight; the server stays up.
      std::cerr << "gqe serve: error in a decode step, ending " << running() + int64_t(prefilling_.size())
                << " sequence(s): " << e.what() << "\n";
      for (auto& l : lanes_)
        for (auto& s : l.seqs) finish(*s, "error");
      for (auto& s : prefilling_) finish(*s, "error");
      lanes_.clear();
      prefilling_.clear();
    }
  }
}

void Scheduler::step() {
  // Choices whose client left or whose stop string was seen end here, before the next forward.
  auto ended = [&](Seq& s) {
    if (s.req->cancelled || stop_) return std::string("cancelled");
    std::lock_guard<std::mutex> lk(s.req->mu);
    return std::string(s.req->choices[s.choice].stop_requested ? "stop" : "");
  };
  std::vector<bool> changed(lanes_.size(), false);
  for (size_t l = 0; l < lanes_.size(); ++l)
    for (auto& s : lanes_[l].seqs) {
      if (s->done) {
        changed[l] = true;
        continue;
      }
      const std::string why = ended(*s);
      if (!why.empty()) finish(*s, why), changed[l] = true;
    }
  for (auto it = prefilling_.begin(); it != prefilling_.end();) {
    const std::string why = ended(**it);
    if (why.empty()) {
      ++it;
      continue;
    }
    finish(**it, why);
    it = prefilling_.erase(it);
  }
  std::vector<std::unique_ptr<Seq>> join;
  if (!prefilling_.empty()) {
    prefill_one();
    Seq& s = *prefilling_.front();
    if (s.prefilled == int64_t(s.spec->prompt.size())) {
      if (!s.done) join.push_back(std::move(prefilling_.front()));
      prefilling_.erase(prefilling_.begin());
    }
  }
  // A newcomer joins the lane with the fewest sequences that has room, else a lane of its own.
  size_t target = lanes_.size();
  int64_t fewest = decode_rows_;
  for (size_t l = 0; l < lanes_.size() && !join.empty(); ++l) {
    int64_t live = 0;
    for (auto& s : lanes_[l].seqs) live += !s->done;
    if (live < fewest) fewest = live, target = l;
  }
  if (!join.empty() && target == lanes_.size()) {
    lanes_.emplace_back();
    changed.push_back(false);
  }
  for (size_t l = 0; l < lanes_.size(); ++l) {
    std::vector<std::unique_ptr<Seq>> none;
    if (l == target && !join.empty()) rebuild_cache(lanes_[l], join);
    else if (changed[l]) rebuild_cache(lanes_[l], none);
  }
  lanes_.erase(std::remove_if(lanes_.begin(), lanes_.end(), [](const Lane& l) { return l.seqs.empty(); }), lanes_.end());
  if (lanes_.empty()) return;
  const auto t0 = Clock::now();
  int64_t B = 0;
  for (Lane& l : lanes_) decode(l), B += int64_t(l.seqs.size());
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  std::lock_guard<std::mutex> lk(mu_);
  ++stats_.decode_steps;
  stats_.decode_seconds += dt;
  stats_.decode_step_tokens += B;
  if (B < int64_t(stats_.batch_size_counts.size())) ++stats_.batch_size_counts[size_t(B)];
  const double rate = dt > 0 ? double(B) / dt : 0;
  stats_.tokens_per_second = stats_.tokens_per_second == 0 ? rate : 0.9 * stats_.tokens_per_second + 0.1 * rate;
}

int64_t Scheduler::running() const {
  int64_t n = 0;
  for (const Lane& l : lanes_) n += int64_t(l.seqs.size());
  return n;
}

void Scheduler::prefill_one() {
  Seq& s = *prefilling_.front();
  const std::vector<int64_t>& prompt = s.spec->prompt;
  const int64_t n = std::min<int64_t>(std::max<int64_t>(opt_.prefill_chunk, 1), int64_t(prompt.size()) - s.prefilled);
  std::vector<int64_t> chunk(prompt.begin() + s.prefilled, prompt.begin() + s.prefilled + n);
  // The whole prompt in one call when it fits the chunk: generate()'s prefill, the same forward.
  LMOutput o = model_.forward(at::tensor(chunk, at::kLong).unsqueeze(0).to(device_), &s.cache);  // host: copied to the model
  s.prefilled += n;
  s.length = s.prefilled;
  if (s.prefilled < int64_t(prompt.size())) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.prompt_tokens += int64_t(prompt.size());
  }
  emit(s, o.logits[0][n - 1].to(at::kCPU));
}

void Scheduler::decode(Lane& lane) {
  const int64_t B = int64_t(lane.seqs.size());
  std::vector<int64_t> ids(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) ids[size_t(b)] = lane.seqs[size_t(b)]->pending;
  LMOutput o = model_.forward(at::tensor(ids, at::kLong).view({B, 1}).to(device_), &lane.cache);  // host: copied to the model
  at::Tensor rows = o.logits.select(1, 0).to(at::kCPU);
  for (int64_t b = 0; b < B; ++b) {
    Seq& s = *lane.seqs[size_t(b)];
    ++s.length;
    emit(s, rows[b]);
  }
}

void Scheduler::emit(Seq& s, const at::Tensor& logits) {
  const SamplingOptions& opt = s.spec->sampling;
  const int64_t tok = sample_token(logits, opt, s.rng);
  TokenOut out;
  out.id = tok;
  if (s.spec->logprobs >= 0) {
    at::Tensor l = logits.to(at::kCPU, at::kDouble).contiguous();
    const double* p = l.data_ptr<double>();
    const int64_t V = opt.vocab_limit > 0 ? std::min<int64_t>(l.numel(), opt.vocab_limit) : l.numel();
    const double mx = *std::max_element(p, p + V);
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += std::exp(p[i] - mx);
    const double lse = mx + std::log(sum);
    out.logprob = p[tok] - lse;
    const int64_t k = std::min<int64_t>(s.spec->logprobs, V);
    std::vector<int64_t> idx(static_cast<size_t>(V));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    for (int64_t i = 0; i < k; ++i) out.top.emplace_back(idx[size_t(i)], p[idx[size_t(i)]] - lse);
  }
  ++s.generated;
  s.pending = tok;
  bool first = false;
  {
    std::lock_guard<std::mutex> lk(s.req->mu);
    auto& c = s.req->choices[s.choice];
    first = std::all_of(s.req->choices.begin(), s.req->choices.end(),
                        [](const Request::Choice& x) { return x.tokens.empty(); });
    c.tokens.push_back(std::move(out));
  }
  s.req->cv.notify_all();
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.generated_tokens;
    if (first) {
      const double t = std::chrono::duration<double>(Clock::now() - s.req->submitted).count();
      stats_.ttft_sum += t;
      ++stats_.ttft_count;
      for (size_t i = 0; i < stats_.ttft_bounds.size(); ++i)
        if (t <= stats_.ttft_bounds[i]) ++stats_.ttft_counts[i];
      ++stats_.ttft_counts.back();
    }
  }
  // generate()'s stopping rules: the stop token, max_new_tokens, the end of the context.
  if (tok == opt.stop_token) finish(s, "stop");
  else if (s.generated >= opt.max_new_tokens || s.length + 1 > model_.config().max_position_embeddings)
    finish(s, "length");
}

void Scheduler::finish(Seq& s, const std::string& reason) {
  if (s.done) return;
  s.done = true;
  bool all = false;
  {
    std::lock_guard<std::mutex> lk(s.req->mu);
    auto& c = s.req->choices[s.choice];
    c.finished = true;
    c.finish_reason = reason;
    all = s.req->all_finished();
  }
  {  // the books first, so that whoever sees the request end also sees its memory returned
    std::lock_guard<std::mutex> lk(mu_);
    --active_sequences_;
    if (all) {
      stats_.kv_reserved -= s.req->reserved;
      if (s.req->cancelled || reason == "cancelled") ++stats_.requests_cancelled;
      else ++stats_.requests_finished;
    }
  }
  s.req->cv.notify_all();
  if (all) cv_.notify_all();
}

void Scheduler::rebuild_cache(Lane& lane, std::vector<std::unique_ptr<Seq>>& join) {
  std::vector<std::unique_ptr<Seq>>& keep = lane.seqs;
  // The rows that stay (not done) keep their order; newcomers follow. Each row's K/V are copied into a fresh
  // right-padded storage, which then is made ragged with every row's length, as generate_batch's prefill.
  std::vector<std::unique_ptr<Seq>> rows;
  std::vector<std::pair<KVCache*, int64_t>> src;  // (cache, row in it)
  for (size_t b = 0; b < keep.size(); ++b)
    if (!keep[b]->done) src.emplace_back(&lane.cache, int64_t(b)), rows.push_back(std::move(keep[b]));
  for (auto& s : join) src.emplace_back(&s->cache, 0), rows.push_back(std::move(s));
  join.clear();
  KVCache fresh = model_.make_cache();
  if (!rows.empty()) {
    std::vector<int64_t> len;
    for (auto& s : rows) len.push_back(s->length);
    const int64_t B = int64_t(rows.size()), longest = *std::max_element(len.begin(), len.end());
    for (size_t l = 0; l < fresh.layers.size(); ++l) {
      const at::Tensor like = src[0].first->layers[l].keys();
      at::Tensor k = at::zeros({B, longest, like.size(2), like.size(3)}, like.options()), v = at::zeros_like(k);
      for (int64_t b = 0; b < B; ++b) {
        LayerKVCache& from = src[size_t(b)].first->layers[l];
        const int64_t row = src[size_t(b)].second, n = len[size_t(b)];
        k[b].narrow(0, 0, n).copy_(from.keys()[row].narrow(0, 0, n));
        v[b].narrow(0, 0, n).copy_(from.values()[row].narrow(0, 0, n));
      }
      fresh.layers[l].append(k, v);
    }
    fresh.set_lengths(len);
  }
  lane.cache = std::move(fresh);
  for (auto& s : rows) s->cache = KVCache();  // a newcomer's own cache is in the batch's now
  keep = std::move(rows);
}

int64_t Scheduler::drain(std::chrono::milliseconds timeout) {
  draining_ = true;
  std::unique_lock<std::mutex> lk(mu_);
  auto idle = [&] { return queue_.empty() && stats_.running == 0 && stats_.prefilling == 0 && stats_.kv_reserved == 0; };
  if (cv_.wait_for(lk, timeout, idle)) return 0;
  const int64_t before = stats_.requests_cancelled;
  stop_ = true;  // the loop cancels what runs and what waits, then ends
  cv_.notify_all();
  lk.unlock();
  if (thread_.joinable()) thread_.join();
  lk.lock();
  return stats_.requests_cancelled - before;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

}  // namespace gqe::serve
