#include "gqe/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "gqe/core/autocast.h"
#include "gqe/core/error.h"
#include "gqe/core/json.h"
#include "gqe/core/fs.h"
#include "gqe/io/checkpoint.h"
#include "gqe/train/schedule.h"
#include "gqe/train/train_checkpoint.h"

namespace gqe {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Stop requests travel as one slot per signal number in the step's sums: a sum over ranks of one-hot
// vectors, from which every rank reads the same highest signal asked for (a max over ranks).
constexpr int64_t kStopSlots = 65;

}  // namespace

bool autocast_enabled_for(const TrainRecipe& r, const at::Device& device) {
  if (r.precision == Precision::fp32) return false;
  if (device.is_cuda()) return true;  // "auto" and "bf16"
  if (r.precision == Precision::bf16)
    throw ConfigError("precision \"bf16\": bf16 autocast is used on CUDA only; this run is on " + device.str() +
                      " (use \"auto\" or \"fp32\": CPU trains in fp32)");
  return false;
}

// ---------------------------------------------------------------------------------------------------
bool LossSpikeDetector::observe(double loss) {
  if (seen_ < warmup_) {  // Welford mean / population variance over the first `warmup_` losses
    ++seen_;
    const double d = loss - mean_;
    mean_ += d / double(seen_);
    var_ += d * (loss - mean_);
    if (seen_ == warmup_) var_ /= double(seen_);
    return false;
  }
  const double z = (loss - mean_) / (std::sqrt(var_) + 1e-8);
  mean_ = alpha_ * mean_ + (1 - alpha_) * loss;
  var_ = alpha_ * var_ + (1 - alpha_) * (loss - mean_) * (loss - mean_);
  return z_ > 0 && z > z_;
}

nlohmann::json LossSpikeDetector::state() const { return {{"seen", seen_}, {"mean", mean_}, {"var", var_}}; }

void LossSpikeDetector::load_state(const nlohmann::json& j, const std::string& source) {
  seen_ = json_integer<int64_t>(j, "seen", source, "loss_spikes.", 0);
  mean_ = json_number(j, "mean", source, "loss_spikes.");
  var_ = json_number(j, "var", source, "loss_spikes.");
}

// ---------------------------------------------------------------------------------------------------
struct Trainer::StepOutcome {
  double lr = 0, loss = 0, aux = 0, grad_norm = 0, clip_to = 0, seconds = 0;
  bool clipped = false, skipped = false;
  std::string skip_reason;
  at::Tensor router_counts;  // [L, G, M] over all ranks, or undefined
  int stop = 0;              // the signal asking the run to stop after this step (agreed by all ranks), or 0
};

Trainer::Trainer(LanguageModel& model, TrainRecipe recipe, TokenSource& train, ValSourceFactory make_val,
                 Communicator& comm, TrainerIO io)
    : model_(model), r_(std::move(recipe)), train_(train), make_val_(std::move(make_val)), comm_(comm),
      io_(std::move(io)), zclip_(r_.zclip), spikes_(r_.loss_spike_z) {
  accum_ = accumulation_steps(r_, comm_.world_size());
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& p : model_.named_parameters()) named.emplace_back(p.key(), p.value());
  if (named.empty()) throw Error("trainer: the model has no parameters");
  device_ = named.front().second.device();
  use_autocast_ = autocast_enabled_for(r_, device_);
  opt_ = std::make_unique<AdamW>(std::move(named), r_.adamw);
  if (comm_.world_size() > 1) {
    // Identical starting weights on every rank, whatever each rank's initialisation did.
    torch::NoGradGuard g;
    std::vector<at::Tensor> ts;
    for (const auto& [n, p] : opt_->params()) ts.push_back(p.detach());
    comm_.broadcast(ts, 0);
  }
}

SkipDecision decide_skip(double loss, double aux, double grad_norm, double spike_z, LossSpikeDetector& spikes) {
  if (!std::isfinite(loss) || !std::isfinite(aux) || !std::isfinite(grad_norm))
    return {true, "non-finite loss or gradient"};
  if (spike_z > 0 && spikes.observe(loss)) return {true, "loss spike"};
  return {};
}

// An optimizer step in the order of the recipe (trainer.h): accumulate, reduce across ranks, decide,
// clip and update.
Trainer::StepOutcome Trainer::train_step() {
  StepOutcome o;
  const auto t0 = Clock::now();
  o.lr = wsd_learning_rate(r_.schedule, step_);
  accumulate(o);
  reduce_across_ranks(o);
  o.grad_norm = gradient_norm();
  o.clip_to = o.grad_norm;
  const SkipDecision skip = decide_skip(o.loss, o.aux, o.grad_norm, r_.loss_spike_z, spikes_);
  o.skipped = skip.skip;
  o.skip_reason = skip.reason;
  if (o.skipped) {
    count_skip(o.skip_reason);
  } else {
    clip_and_update(o);
  }
  ++step_;
  tokens_seen_ += tokens_per_step(r_, comm_.world_size());
  o.seconds = seconds_since(t0);
  return o;
}

void Trainer::accumulate(StepOutcome& o) {
  const double aux_weight = model_.config().attention.is_gqe() ? model_.config().attention.aux_loss_weight : 0.0;
  opt_->zero_grad();
  model_.train();
  for (int64_t m = 0; m < accum_; ++m) {
    auto [x, y] = train_.next();
    x = x.to(device_);
    y = y.to(device_);
    LMOutput out;
    {
      CudaAutocastScope autocast(use_autocast_);
      out = model_.forward(x);
    }
    at::Tensor lm = LanguageModel::lm_loss(out.logits.to(at::kFloat), y);
    at::Tensor loss = aux_weight != 0 ? lm + aux_weight * out.aux_loss.to(at::kFloat) : lm;
    if (accum_ > 1) loss = loss / double(accum_);
    loss.backward();
    o.loss += lm.item<double>();
    o.aux += out.aux_loss.item<double>();
    accumulate_router_counts(model_, o.router_counts);
  }
}

void Trainer::reduce_across_ranks(StepOutcome& o) {
  const int W = comm_.world_size();
  int stop = io_.stop_requested ? io_.stop_requested() : 0;
  if (stop < 0 || stop >= kStopSlots) stop = kStopSlots - 1;
  o.stop = stop;
  if (W > 1) {
    std::vector<at::Tensor> plist;
    for (const auto& [n, p] : opt_->params()) plist.push_back(p);
    allreduce_mean_gradients(comm_, plist);
    // host: the communicator copies to its device and back
    at::Tensor sums = at::cat({at::tensor({o.loss, o.aux}, at::kDouble), at::zeros({kStopSlots}, at::kDouble)});
    if (stop > 0) sums[2 + stop].fill_(1.0);
    if (o.router_counts.defined()) sums = at::cat({sums, o.router_counts.reshape({-1})});
    std::vector<at::Tensor> stats{sums};
    comm_.allreduce_sum(stats);
    const double* s = stats[0].data_ptr<double>();
    o.loss = s[0];
    o.aux = s[1];
    o.stop = 0;
    for (int64_t sig = kStopSlots - 1; sig > 0 && o.stop == 0; --sig)
      if (s[2 + sig] > 0) o.stop = int(sig);
    if (o.router_counts.defined())
      o.router_counts =
          stats[0].narrow(0, 2 + kStopSlots, o.router_counts.numel()).view_as(o.router_counts).clone();
  }
  o.loss /= double(accum_ * W);  // sums over micro-batches and ranks -> means
  o.aux /= double(accum_ * W);
}

double Trainer::gradient_norm() const {
  torch::NoGradGuard g;
  std::vector<at::Tensor> norms;
  for (const auto& [n, p] : opt_->params())
    if (p.grad().defined()) norms.push_back(p.grad().to(at::kFloat).norm(2));
  return norms.empty() ? 0.0 : at::stack(norms).norm(2).item<double>();
}

void Trainer::clip_and_update(StepOutcome& o) {
  const ZClipDecision d = zclip_.observe(o.grad_norm);
  if (d.clipped && o.grad_norm > 0) {
    torch::NoGradGuard g;
    const double scale = d.target / o.grad_norm;
    for (const auto& [n, p] : opt_->params())
      if (p.grad().defined()) p.mutable_grad().mul_(scale);
  }
  o.clipped = d.clipped;
  o.clip_to = d.target;
  opt_->step(o.lr);
  consecutive_skips_ = 0;
}

void Trainer::count_skip(const std::string& reason) {
  ++skipped_total_;
  if (++consecutive_skips_ >= r_.max_skipped_steps)
    throw Error("training stopped at step " + std::to_string(step_ + 1) + ": " + std::to_string(consecutive_skips_) +
                " consecutive steps skipped (last: " + reason +
                "); the run has diverged. Resume from an earlier checkpoint (--resume) with a lower --lr");
}

double Trainer::elapsed_seconds() const {
  return elapsed_before_ + (running_since_ ? seconds_since(*running_since_) : 0.0);
}

double Trainer::evaluate() {
  if (!make_val_ || r_.eval_batches <= 0) return kNaN;
  torch::NoGradGuard g;
  const bool was_training = model_.is_training();
  model_.eval();
  auto src = make_val_();
  double sum = 0;
  for (int64_t i = 0; i < r_.eval_batches; ++i) {
    auto [x, y] = src->next();
    CudaAutocastScope autocast(use_autocast_);
    sum += LanguageModel::lm_loss(model_.forward(x.to(device_)).logits.to(at::kFloat), y.to(device_)).item<double>();
  }
  // host: the communicator copies to its device and back
  std::vector<at::Tensor> s{at::tensor({sum, double(r_.eval_batches)}, at::kDouble)};
  comm_.allreduce_sum(s);
  model_.train(was_training);
  return s[0][0].item<double>() / s[0][1].item<double>();
}

nlohmann::json Trainer::state_json() const {
  const DataPosition pos = train_.position();
  nlohmann::json run = nlohmann::json::object();
  for (const auto& [field, value] : io_.run_identity) run[field] = value;
  return {{"format", "gqe-train-state"},
          {"version", 1},
          {"step", step_},
          {"optimizer_steps", opt_->steps_taken()},
          {"tokens_seen", tokens_seen_},
          {"data", {{"epoch", pos.epoch}, {"step", pos.step}}},
          {"zclip", zclip_.state()},
          {"loss_spikes", spikes_.state()},
          {"consecutive_skips", consecutive_skips_},
          {"skipped_total", skipped_total_},
          {"elapsed_s", elapsed_seconds()},
          {"world_size", comm_.world_size()},
          {"micro_batch", r_.micro_batch},
          {"seq_len", r_.seq_len},
          {"accumulation", accum_},
          {"recipe", recipe_to_json(r_)},
          {"run", run}};
}

std::string Trainer::save_checkpoint() {
  if (!comm_.is_main() || io_.out_dir.empty()) return "";
  at::Tensor rng;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    rng = gen.get_state();
  }
  // The plain model checkpoint beside (config.json + model.safetensors) is what `gqe generate` reads. It is
  // written first: a resume starts from the training checkpoint, so a kill between the two must leave that
  // one older (the step is redone and both are rewritten), never the plain model (a run resumed at its
  // last step trains nothing and would not rewrite it).
  save_model_checkpoint(io_.out_dir, model_, {{"step", std::to_string(step_)}});
  return write_train_checkpoint(io_.out_dir, step_, model_, opt_->state_tensors(), rng, state_json(),
                                r_.keep_checkpoints);
}

void Trainer::resume(const std::string& path, const WeightLoadOptions& options) {
  const std::string dir = find_train_checkpoint(path);
  TrainCheckpoint c = read_train_checkpoint(dir, model_, options);
  const auto& st = c.state;
  const std::string src = dir + "/trainer_state.json";
  try {
    const int64_t T = json_integer<int64_t>(st, "seq_len", src, "", 1);
    // Both at most 2^31: their product cannot overflow.
    const int64_t rows = json_integer<int64_t>(st, "micro_batch", src, "", 1, INT32_MAX) *
                         json_integer<int64_t>(st, "world_size", src, "", 1, INT32_MAX);
    const int64_t acc = json_integer<int64_t>(st, "accumulation", src, "", 1);
    if (T != r_.seq_len || rows != r_.micro_batch * comm_.world_size() || acc != accum_)
      throw Error(src + ": the checkpoint was trained with seq_len " + std::to_string(T) + ", " + std::to_string(rows) +
                  " sequences per micro-step over all ranks and accumulation " + std::to_string(acc) +
                  "; this run has seq_len " + std::to_string(r_.seq_len) + ", " +
                  std::to_string(r_.micro_batch * comm_.world_size()) + " and " + std::to_string(accum_) +
                  " (the data position would not line up; keep --seq, --batch x ranks and --global-batch)");
    // Another run's checkpoint (another seed, tokenizer, data or recipe) would continue silently as a mix
    // of both. Checkpoints of gqe versions that recorded no identity are taken as they are.
    if (st.contains("run") && st.at("run").is_object()) {
      const nlohmann::json& then = st.at("run");
      const auto refuse = [&](const std::string& field, const std::string& was, const std::string& now) {
        throw Error(src + ": field 'run." + field + "': the checkpoint's run has " + was + ", this run " + now +
                    "; a resumed run keeps its model, data, tokenizer, seed and recipe (only " +
                    "the step count, --stop-at, the save and evaluation cadence, threads and logging may change): " +
                    "resume with the checkpoint's settings, or start a new run in another --out");
      };
      for (const auto& [field, now] : io_.run_identity) {
        if (!then.contains(field) || !then.at(field).is_string() || then.at(field).get<std::string>() == now) continue;
        refuse(field, then.at(field).get<std::string>(), now);
      }
      // Fields that exist only when set (a data order of its own, a token limit): a run without them is
      // another run too.
      for (auto it = then.begin(); it != then.end(); ++it) {
        const bool here = std::any_of(io_.run_identity.begin(), io_.run_identity.end(),
                                      [&](const auto& f) { return f.first == it.key(); });
        if (!here && it->is_string()) refuse(it.key(), it->get<std::string>(), "none");
      }
    }
    opt_->load_state(c.optimizer_tensors, json_integer<int64_t>(st, "optimizer_steps", src, "", 0),
                     dir + "/optimizer.safetensors");
    zclip_.load_state(st.at("zclip"), src);
    spikes_.load_state(st.at("loss_spikes"), src);
    step_ = json_integer<int64_t>(st, "step", src, "", 0);
    tokens_seen_ = json_integer<int64_t>(st, "tokens_seen", src, "", 0);
    consecutive_skips_ = json_integer<int64_t>(st, "consecutive_skips", src, "", 0);
    skipped_total_ = json_integer<int64_t>(st, "skipped_total", src, "", 0);
    elapsed_before_ = json_number(st, "elapsed_s", src);
    DataPosition pos;
    pos.epoch = json_integer<uint64_t>(st.at("data"), "epoch", src, "data.");
    pos.step = json_integer<uint64_t>(st.at("data"), "step", src, "data.");
    train_.restore(pos);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(src + ": " + e.what());
  }
  if (c.rng_state.defined()) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    try {
      gen.set_state(c.rng_state);
    } catch (const c10::Error& e) {  // libtorch checks the size, dtype and mt19937 invariants
      throw FormatError(dir + "/optimizer.safetensors: tensor 'rng/cpu' is not a CPU generator state: " +
                        e.what_without_backtrace());
    }
  }
  resumed_ = true;
  if (io_.log && comm_.is_main())
    *io_.log << "resumed from " << dir << " at step " << step_ << " (" << tokens_seen_ << " tokens seen)" << std::endl;
}

TrainResult Trainer::run(int64_t stop_at) {
  const int64_t total = r_.schedule.total_steps;
  const int64_t target = stop_at >= 0 ? std::min(stop_at, total) : total;
  const bool main = comm_.is_main();
  const int64_t tps_step = tokens_per_step(r_, comm_.world_size());
  if (main && !io_.out_dir.empty()) fs::mkdirs(io_.out_dir);
  if (main && !io_.out_dir.empty() && !metrics_.is_open()) {
    const std::string path = io_.out_dir + "/metrics.jsonl";
    const MetricsRepair fixed = metrics_.open(path, resumed_ ? std::optional<int64_t>(step_) : std::nullopt);
    if (io_.log && fixed.torn_last_line) *io_.log << path << ": dropped a torn last line (a write cut short)\n";
    if (io_.log && fixed.dropped_records > 0)
      *io_.log << path << ": dropped " << fixed.dropped_records << " record(s) past the resumed step " << step_ << "\n";
  }
  TrainResult res;
  res.final_val_loss = kNaN;
  double step_seconds = 0;
  const auto run_start = Clock::now();
  running_since_ = run_start;
  int64_t window_n = 0;
  double window_loss = 0;
  while (step_ < target) {
    StepOutcome o = train_step();
    step_seconds += o.seconds;
    const int64_t done = int64_t(res.losses.size()) + 1;
    res.losses.push_back(o.loss);
    res.aux_losses.push_back(o.aux);
    res.grad_norms.push_back(o.grad_norm);
    res.skipped.push_back(o.skipped);
    res.clipped_steps += o.clipped;
    res.skipped_steps += o.skipped;
    const double tok_s = double(done * tps_step) / std::max(step_seconds, 1e-9);
    if (main) {
      metrics_.write({{"type", "train"},
                      {"step", step_},
                      {"loss", o.loss},
                      {"aux_loss", o.aux},
                      {"lr", o.lr},
                      {"grad_norm", o.grad_norm},
                      {"clip_to", o.clip_to},
                      {"clipped", o.clipped},
                      {"skipped", o.skipped},
                      {"skip_reason", o.skip_reason},
                      {"tokens", tokens_seen_},
                      {"tokens_per_s", double(tps_step) / std::max(o.seconds, 1e-9)},
                      {"elapsed_s", elapsed_seconds()},
                      {"router_load", router_load_json(o.router_counts)}});
      if (o.skipped && io_.log)
        *io_.log << "step " << step_ << ": skipped the update (" << o.skip_reason << ", loss " << o.loss
                 << ", grad norm " << o.grad_norm << "); weights unchanged" << std::endl;
    }
    if (std::isfinite(o.loss)) {
      window_loss += o.loss;
      ++window_n;
    }
    if (main && io_.log && (step_ % r_.log_every == 0 || step_ == target)) {
      char buf[320];
      const double eta = step_seconds / double(done) * double(total - step_);
      std::snprintf(buf, sizeof buf,
                    "step %6lld/%lld | loss %.4f | aux %.4f | lr %.2e | gnorm %.3f%s | %.0f tok/s | %s elapsed, ETA %s",
                    (long long)step_, (long long)total, window_n ? window_loss / double(window_n) : kNaN, o.aux, o.lr,
                    o.grad_norm, o.clipped ? " (clipped)" : "", tok_s,
                    format_duration(elapsed_seconds()).c_str(), format_duration(eta).c_str());
      *io_.log << buf << std::endl;
      window_loss = 0;
      window_n = 0;
    }
    const bool last = step_ == target;
    if ((r_.eval_every > 0 && step_ % r_.eval_every == 0) || last) {
      const double v = evaluate();
      if (std::isfinite(v)) {
        res.final_val_loss = v;
        if (main) {
          metrics_.write({{"type", "val"}, {"step", step_}, {"val_loss", v}, {"val_ppl", std::exp(v)}});
          if (io_.log) {
            char buf[128];
            std::snprintf(buf, sizeof buf, "step %6lld | validation loss %.4f (ppl %.2f)", (long long)step_, v, std::exp(v));
            *io_.log << buf << std::endl;
          }
        }
      }
    }
    // A stop request saves this step whatever the cadence: the resumed run continues from here exactly as
    // the uninterrupted one would (the validation above stays on its cadence, so the logs match too).
    const bool stop = o.stop != 0;
    if (!io_.out_dir.empty() && ((r_.save_every > 0 && step_ % r_.save_every == 0) || last || stop)) {
      const std::string d = save_checkpoint();  // carries elapsed_seconds(), this call's time included
      if (!d.empty()) res.checkpoint = d;
      if (main && io_.log && !d.empty() && !last && !stop) *io_.log << "checkpoint " << d << std::endl;
    }
    if (stop) {
      res.stopped_by = o.stop;
      break;
    }
  }
  res.seconds = seconds_since(run_start);
  elapsed_before_ += res.seconds;
  running_since_.reset();
  res.tokens_per_second = res.losses.empty() ? 0.0 : double(res.losses.size() * tps_step) / std::max(step_seconds, 1e-9);
  return res;
}

}  // namespace gqe
