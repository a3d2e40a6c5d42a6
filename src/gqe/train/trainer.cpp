#include "gqe/train/trainer.h"

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "gqe/core/error.h"
#include "gqe/io/checkpoint.h"

namespace gqe {

double learning_rate_at(const TrainOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.lr * double(step + 1) / double(o.warmup_steps);
  const double span = std::max<int64_t>(1, o.steps - o.warmup_steps);
  const double t = std::min(1.0, double(step - o.warmup_steps) / span);
  const double floor = o.lr * o.min_lr_ratio;
  return floor + 0.5 * (o.lr - floor) * (1.0 + std::cos(M_PI * t));
}

namespace {

// Inputs and next-token targets for the given window starts: two [B, T] int64 tensors.
std::pair<at::Tensor, at::Tensor> make_batch(const std::vector<int64_t>& tokens, const std::vector<int64_t>& starts,
                                             int64_t T) {
  const int64_t B = int64_t(starts.size());
  at::Tensor x = at::empty({B, T}, at::kLong), y = at::empty({B, T}, at::kLong);
  int64_t* xp = x.data_ptr<int64_t>();
  int64_t* yp = y.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      xp[b * T + t] = tokens[starts[b] + t];
      yp[b * T + t] = tokens[starts[b] + t + 1];
    }
  return {x, y};
}

std::string format_seconds(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%.0fs", s);
  return buf;
}

}  // namespace

double evaluate_loss(LanguageModel& model, const std::vector<int64_t>& tokens, int64_t B, int64_t T, int64_t batches) {
  torch::NoGradGuard g;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t span = int64_t(tokens.size()) - T - 1;
  double total = 0;
  for (int64_t i = 0; i < batches; ++i) {
    std::vector<int64_t> starts;
    for (int64_t b = 0; b < B; ++b) starts.push_back(((i * B + b) * 7919 * T) % std::max<int64_t>(span, 1));
    auto [x, y] = make_batch(tokens, starts, T);
    total += LanguageModel::lm_loss(model.forward(x).logits, y).item<double>();
  }
  model.train(was_training);
  return total / double(batches);
}

TrainResult train_model(LanguageModel& model, const std::vector<int64_t>& tokens, const TrainOptions& o,
                        std::ostream& log) {
  const int64_t T = o.seq_len, B = o.batch_size;
  const int64_t n_val = int64_t(double(tokens.size()) * o.val_fraction);
  const int64_t n_train = int64_t(tokens.size()) - n_val;
  if (n_train < T + 2) throw Error("training data: " + std::to_string(tokens.size()) + " tokens is too short for seq_len " + std::to_string(T));
  std::vector<int64_t> val(tokens.end() - n_val, tokens.end());
  const bool have_val = n_val >= T + 2;

  // Weight decay on matrices only; norms (1-D) and the embedding are not decayed.
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& p : model.named_parameters()) {
    const bool is_embedding = p.key().rfind("embed_tokens", 0) == 0;
    (p.value().dim() >= 2 && !is_embedding ? decay : no_decay).push_back(p.value());
  }
  auto base = torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).eps(1e-7);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(base.weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(base.weight_decay(0.0)));
  torch::optim::AdamW optimizer(std::move(groups), base);

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> pick(0, n_train - T - 2);
  const double aux_weight = model.config().attention.is_gqe() ? model.config().attention.aux_loss_weight : 0.0;
  model.train();
  TrainResult res;
  auto t0 = std::chrono::steady_clock::now();
  double window_loss = 0;
  int64_t window_n = 0;
  for (int64_t step = 0; step < o.steps; ++step) {
    const double lr = learning_rate_at(o, step);
    for (auto& g : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    std::vector<int64_t> starts(B);
    for (auto& s : starts) s = pick(rng);
    auto [x, y] = make_batch(tokens, starts, T);
    LMOutput out = model.forward(x);
    at::Tensor lm = LanguageModel::lm_loss(out.logits, y);
    at::Tensor loss = lm + aux_weight * out.aux_loss;
    optimizer.zero_grad();
    loss.backward();
    if (o.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model.parameters(), o.grad_clip);
    optimizer.step();
    res.losses.push_back(lm.item<double>());
    res.aux_losses.push_back(out.aux_loss.item<double>());
    window_loss += res.losses.back();
    ++window_n;

    const bool last = step + 1 == o.steps;
    if ((step + 1) % o.log_every == 0 || last) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tps = double((step + 1) * B * T) / el;
      char buf[256];
      std::snprintf(buf, sizeof buf, "step %5lld/%lld | loss %.4f | aux %.3f | lr %.2e | %.0f tok/s | %s elapsed, ETA %s",
                    (long long)(step + 1), (long long)o.steps, window_loss / window_n, res.aux_losses.back(), lr, tps,
                    format_seconds(el).c_str(), format_seconds(el / (step + 1) * (o.steps - step - 1)).c_str());
      log << buf << std::endl;
      window_loss = 0;
      window_n = 0;
    }
    if (have_val && ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last)) {
      res.final_val_loss = evaluate_loss(model, val, B, T, o.eval_batches);
      char buf[128];
      std::snprintf(buf, sizeof buf, "step %5lld | validation loss %.4f (ppl %.2f)", (long long)(step + 1),
                    res.final_val_loss, std::exp(res.final_val_loss));
      log << buf << std::endl;
    }
    if (!o.out_dir.empty() && ((o.save_every > 0 && (step + 1) % o.save_every == 0) || last)) {
      save_model_checkpoint(o.out_dir, model, {{"step", std::to_string(step + 1)}});
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.tokens_per_second = double(o.steps * B * T) / res.seconds;
  return res;
}

}  // namespace gqe
