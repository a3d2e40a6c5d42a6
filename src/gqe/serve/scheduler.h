// Continuous batching over gqe's ragged-batch decode: one thread owns the model and runs the decode loop.
// (The running batch is kept in lanes of at most `decode_rows` sequences, one forward each: see
// SchedulerOptions::decode_rows.)
// Each step decodes one token for every running sequence (one forward over a ragged KV cache, as
// generate_batch does); sequences whose prompt has been prefilled join at the next step and finished or
// cancelled ones leave it, the batch's cache rebuilt from its rows then. A newcomer's prompt is prefilled
// alone (a batch of one, as generate() prefills it) in chunks of at most `prefill_chunk` tokens, one chunk
// between two decode steps, so that a long prompt does not stall the running sequences.
//
// Admission: every sequence reserves KV memory for its prompt plus its max_tokens (bytes_per_position
// each) when it enters; it is admitted while the reservations fit `kv_memory` and the batch has fewer than
// `max_batch` sequences, in arrival order. Requests that do not fit wait in a bounded queue; a full queue
// refuses (ApiError 429); a request that fits at once does not count against the queue. Nothing is evicted mid-generation: a sequence keeps its reservation until it
// ends, so an admitted request always runs to completion.
//
// Sampling is sample_token's, with one random stream per sequence seeded as generate() seeds it, so a
// sequence's tokens are generate()'s on its prompt up to the rounding of batched products (docs/serving.md).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gqe/generate/generate.h"

namespace gqe::serve {

struct SchedulerOptions {
  int64_t max_batch = 8;
  int64_t kv_memory = int64_t(1) << 30;  // bytes
  int64_t max_queue = 64;                // sequences waiting for admission
  int64_t prefill_chunk = 512;           // prompt tokens per prefill call
  int threads = 0;                       // intra-op threads of the scheduler thread (0: all cores)
  // Sequences per decode forward (0: gqe's row kernel's limit on the CPU, the whole batch elsewhere). A
  // larger batch decodes as several forwards of at most this many rows (lanes, each with its own cache):
  // up to that many rows the projections run the row kernel, whose every row is the same bits whatever
  // rows share the call; past it a GEMM, whose rounding depends on the row count.
  int64_t decode_rows = 0;
};

// One sequence to generate.
struct SequenceSpec {
  std::vector<int64_t> prompt;
  SamplingOptions sampling;  // max_new_tokens, temperature, top_k, top_p, seed, stop_token, vocab_limit
  int64_t logprobs = -1;     // < 0: none; else the sampled token's log-probability and this many alternatives
};

struct TokenOut {
  int64_t id = 0;
  double logprob = 0;                              // log-probability under the model (temperature 1)
  std::vector<std::pair<int64_t, double>> top;     // the most likely tokens, best first
};

// One HTTP request's sequences (its n choices), shared by the request's thread and the scheduler. The
// scheduler appends tokens and ends choices under `mu` and notifies `cv`; the request thread reads them.
struct Request {
  explicit Request(std::vector<SequenceSpec> specs);
  struct Choice {
    std::vector<TokenOut> tokens;
    bool finished = false;
    std::string finish_reason;   // "stop" (the stop token), "length", "cancelled"
    bool stop_requested = false;  // the request thread saw a stop string
  };
  const std::vector<SequenceSpec> specs;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Choice> choices;
  std::atomic<bool> cancelled{false};  // the client left: every choice ends at the next step
  const std::chrono::steady_clock::time_point submitted;
  int64_t reserved = 0;  // KV bytes, while admitted
  // Under mu: every choice finished.
  bool all_finished() const;
  // Ends every choice at the next step (the client left).
  void cancel();
  // Ends choice i at the next step (its stop string was seen).
  void stop_choice(size_t i);
};

struct SchedulerStats {
  int64_t running = 0, prefilling = 0, queued = 0;
  int64_t kv_reserved = 0, kv_memory = 0, kv_used_positions = 0;
  int64_t requests_admitted = 0, requests_rejected = 0, requests_finished = 0, requests_cancelled = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0, decode_steps = 0;
  double decode_seconds = 0;  // time in decode steps (tokens/s = generated in them / this)
  int64_t decode_step_tokens = 0;
  double tokens_per_second = 0;  // recent decode throughput
  // Time to first token (seconds), as a histogram.
  std::vector<double> ttft_bounds;
  std::vector<int64_t> ttft_counts;  // cumulative per bound; the last is the count of all
  double ttft_sum = 0;
  int64_t ttft_count = 0;
  std::vector<int64_t> batch_size_counts;  // decode steps run at each batch size (index = size)
};

class Scheduler {
 public:
  Scheduler(LanguageModel& model, const SchedulerOptions& opt);
  ~Scheduler();  // stops the thread; unfinished requests end as cancelled
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues the request's sequences for admission, all or none. ApiError 429 (Retry-After) when the queue
  // is full, 503 while draining, 400 when the request alone needs more than the whole KV budget.
  void submit(const std::shared_ptr<Request>& r);
  // Refuses new requests from now on; waits up to `timeout` for the admitted and queued ones to finish, then
  // cancels the rest. Returns how many were cancelled.
  int64_t drain(std::chrono::milliseconds timeout);
  bool draining() const { return draining_; }

  SchedulerStats stats() const;
  int64_t bytes_per_position() const { return bytes_per_position_; }
  const SchedulerOptions& options() const { return opt_; }

 private:
  struct Seq;  // a choice being prefilled or decoded
  void loop();
  void step();
  bool admit();        // under mu_: queued requests into prefill while they fit
  void prefill_one();  // one chunk of the first prefilling sequence
  struct Lane;
  void decode(Lane& lane);  // one token for every sequence of the lane
  void emit(Seq& s, const at::Tensor& logits);  // samples, records, decides whether it ends
  void rebuild_cache(Lane& lane, std::vector<std::unique_ptr<Seq>>& join);
  int64_t running() const;
  void finish(Seq& s, const std::string& reason);
  void release(const std::shared_ptr<Request>& r);  // under mu_: its reservation, once every choice ended

  LanguageModel& model_;
  const SchedulerOptions opt_;
  int64_t bytes_per_position_ = 0;
  at::Device device_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> queue_;
  int64_t queued_sequences_ = 0;
  std::atomic<bool> stop_{false};
  int64_t active_sequences_ = 0;  // admitted, not finished
  std::atomic<bool> draining_{false};
  SchedulerStats stats_;

  // The scheduler thread's own state.
  std::vector<std::unique_ptr<Seq>> prefilling_;  // in order of admission
  std::vector<Lane> lanes_;                       // the running sequences
  int64_t decode_rows_ = 0;
  std::thread thread_;
};

}  // namespace gqe::serve
