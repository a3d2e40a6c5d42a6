#include "gqe/train/recipe.h"

#include <cmath>
#include <set>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"

namespace gqe {
using nlohmann::json;

namespace {
template <class T>
void read(const json& j, const char* key, T& out, const std::string& source) {
  if (!j.contains(key)) return;
  try {
    if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, uint64_t>) {
      const double d = j.at(key).get<double>();  // accepts 3e9 as well as 3000000000
      // 2^63 and 2^64 are exact doubles; converting anything at or beyond T's range is undefined behaviour.
      const double hi = std::is_same_v<T, uint64_t> ? 18446744073709551616.0 : 9223372036854775808.0;
      if (!(d == std::floor(d)) || d >= hi || d < (std::is_same_v<T, uint64_t> ? 0.0 : -hi))
        throw std::invalid_argument("x");
      out = T(d);
    } else {
      out = j.at(key).get<T>();
    }
  } catch (const std::exception&) {
    throw ConfigError(source + ": field '" + key + "': unexpected value " + j.at(key).dump());
  }
}

// A field of a closed set (core/enum_names.h): its JSON string, one of the set's spellings.
template <class E>
void read_enum(const json& j, const char* key, E& out, const std::string& source) {
  if (!j.contains(key)) return;
  std::string text;
  read(j, key, text, source);
  out = parse_enum<E>(text, source + ": field '" + key + "'");
}
}  // namespace

void apply_recipe_json(TrainRecipe& r, const json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(source + ": a recipe must be a JSON object");
  static const std::set<std::string> known = {
      "seq_len", "micro_batch", "global_batch_tokens", "total_tokens", "steps", "warmup_tokens", "warmup_steps",
      "lr", "min_lr", "decay_fraction", "decay_shape", "beta1", "beta2", "eps", "weight_decay", "zclip",
      "zclip_alpha", "zclip_z", "zclip_warmup", "max_grad_norm", "loss_spike_z", "max_skipped_steps", "precision",
      "seed", "data_seed", "log_every", "eval_every", "eval_batches", "save_every", "keep_checkpoints", "comment"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ConfigError(source + ": field '" + it.key() + "': unknown key (expected one of: " + list + ")");
    }
  read(j, "seq_len", r.seq_len, source);
  read(j, "micro_batch", r.micro_batch, source);
  read(j, "global_batch_tokens", r.global_batch_tokens, source);
  read(j, "total_tokens", r.total_tokens, source);
  read(j, "steps", r.schedule.total_steps, source);
  read(j, "warmup_tokens", r.warmup_tokens, source);
  read(j, "warmup_steps", r.schedule.warmup_steps, source);
  read(j, "lr", r.schedule.peak_lr, source);
  read(j, "min_lr", r.schedule.min_lr, source);
  read(j, "decay_fraction", r.schedule.decay_fraction, source);
  read_enum(j, "decay_shape", r.schedule.decay_shape, source);
  read(j, "beta1", r.adamw.beta1, source);
  read(j, "beta2", r.adamw.beta2, source);
  read(j, "eps", r.adamw.eps, source);
  read(j, "weight_decay", r.adamw.weight_decay, source);
  read(j, "zclip", r.zclip.enabled, source);
  read(j, "zclip_alpha", r.zclip.alpha, source);
  read(j, "zclip_z", r.zclip.z_threshold, source);
  read(j, "zclip_warmup", r.zclip.warmup_steps, source);
  read(j, "max_grad_norm", r.zclip.max_norm, source);
  read(j, "loss_spike_z", r.loss_spike_z, source);
  read(j, "max_skipped_steps", r.max_skipped_steps, source);
  read_enum(j, "precision", r.precision, source);
  read(j, "seed", r.seed, source);
  read(j, "data_seed", r.data_seed, source);
  read(j, "log_every", r.log_every, source);
  read(j, "eval_every", r.eval_every, source);
  read(j, "eval_batches", r.eval_batches, source);
  read(j, "save_every", r.save_every, source);
  read(j, "keep_checkpoints", r.keep_checkpoints, source);
  if (j.contains("total_tokens") && j.contains("steps"))
    throw ConfigError(source + ": give either 'total_tokens' or 'steps', not both");
  if (j.contains("steps")) r.total_tokens = 0;
  if (j.contains("warmup_tokens") && j.contains("warmup_steps"))
    throw ConfigError(source + ": give either 'warmup_tokens' or 'warmup_steps', not both");
  if (j.contains("warmup_steps")) r.warmup_tokens = -1;
  if (j.contains("data_seed") && r.data_seed < 0)
    throw ConfigError(source + ": field 'data_seed': expected >= 0, got " + std::to_string(r.data_seed));
  // -1 is the in-memory "automatic"; a file says it by leaving the field out, never by a negative number.
  if (j.contains("warmup_steps") && r.schedule.warmup_steps < 0)
    throw ConfigError(source + ": field 'warmup_steps': expected >= 0, got " + std::to_string(r.schedule.warmup_steps));
  if (j.contains("warmup_tokens") && !(r.warmup_tokens >= 0))
    throw ConfigError(source + ": field 'warmup_tokens': expected >= 0, got " + std::to_string(r.warmup_tokens));
  if (j.contains("total_tokens") && !(r.total_tokens > 0 && r.total_tokens <= 1e15))
    throw ConfigError(source + ": field 'total_tokens': expected a number in (0, 1e15], got " +
                      std::to_string(r.total_tokens));
}

TrainRecipe load_recipe(const std::string& path) {
  const std::string text = fs::read_file(path);
  json j;
  try {
    j = parse_json(text, path);
  } catch (const JsonError& e) {
    throw ConfigError(e.what());
  }
  TrainRecipe r;
  apply_recipe_json(r, j, path);
  return r;
}

json recipe_to_json(const TrainRecipe& r) {
  json j = {{"seq_len", r.seq_len},
          {"micro_batch", r.micro_batch},
          {"global_batch_tokens", r.global_batch_tokens},
          {"steps", r.schedule.total_steps},
          {"warmup_steps", r.schedule.warmup_steps},
          {"lr", r.schedule.peak_lr},
          {"min_lr", r.schedule.min_lr},
          {"decay_fraction", r.schedule.decay_fraction},
          {"decay_shape", to_string(r.schedule.decay_shape)},
          {"beta1", r.adamw.beta1},
          {"beta2", r.adamw.beta2},
          {"eps", r.adamw.eps},
          {"weight_decay", r.adamw.weight_decay},
          {"zclip", r.zclip.enabled},
          {"zclip_alpha", r.zclip.alpha},
          {"zclip_z", r.zclip.z_threshold},
          {"zclip_warmup", r.zclip.warmup_steps},
          {"max_grad_norm", r.zclip.max_norm},
          {"loss_spike_z", r.loss_spike_z},
          {"max_skipped_steps", r.max_skipped_steps},
          {"precision", to_string(r.precision)},
          {"seed", r.seed},
          {"log_every", r.log_every},
          {"eval_every", r.eval_every},
          {"eval_batches", r.eval_batches},
          {"save_every", r.save_every},
          {"keep_checkpoints", r.keep_checkpoints}};
  // Only a data order of its own is written: a run without one keeps the recipe (and the resume
  // fingerprint) it had before the field existed.
  if (r.data_seed >= 0 && uint64_t(r.data_seed) != r.seed) j["data_seed"] = r.data_seed;
  return j;
}

namespace {

// micro_batch x seq_len x world_size, the tokens of one micro-step over all ranks. Checked: a product beyond
// int64 (a huge --batch or --seq) wrapped to a negative count, or to 0 and a division by zero.
int64_t micro_step_tokens(const TrainRecipe& r, int world_size) {
  int64_t rows = 0, tokens = 0;
  if (__builtin_mul_overflow(r.micro_batch, r.seq_len, &rows) || __builtin_mul_overflow(rows, int64_t(world_size), &tokens))
    throw ConfigError("micro_batch " + std::to_string(r.micro_batch) + " x seq_len " + std::to_string(r.seq_len) + " x " +
                      std::to_string(world_size) + " rank(s): the tokens of one micro-step overflow int64; use a "
                      "smaller batch or sequence length");
  return tokens;
}

}  // namespace

int64_t tokens_per_step(const TrainRecipe& r, int world_size) {
  return r.global_batch_tokens > 0 ? r.global_batch_tokens : micro_step_tokens(r, world_size);
}

int64_t accumulation_steps(const TrainRecipe& r, int world_size) {
  const int64_t per_micro = micro_step_tokens(r, world_size);
  const int64_t global = tokens_per_step(r, world_size);
  if (per_micro <= 0 || global % per_micro != 0 || global < per_micro)
    throw ConfigError("global batch: " + std::to_string(global) + " tokens is not a positive multiple of micro_batch " +
                      std::to_string(r.micro_batch) + " x seq_len " + std::to_string(r.seq_len) + " x " +
                      std::to_string(world_size) + " rank(s) = " + std::to_string(per_micro) + " tokens");
  return global / per_micro;
}

void resolve_recipe(TrainRecipe& r, int world_size, const std::string& source) {
  auto fail = [&](const std::string& field, const std::string& msg) {
    throw ConfigError(source + ": field '" + field + "': " + msg);
  };
  if (r.seq_len <= 0) fail("seq_len", "expected a positive length, got " + std::to_string(r.seq_len));
  if (r.micro_batch <= 0) fail("micro_batch", "expected a positive batch, got " + std::to_string(r.micro_batch));
  if (r.global_batch_tokens < 0) fail("global_batch_tokens", "expected >= 0, got " + std::to_string(r.global_batch_tokens));
  try {
    micro_step_tokens(r, world_size);
  } catch (const ConfigError& e) {
    fail("micro_batch", e.what());
  }
  accumulation_steps(r, world_size);
  const double tps = double(tokens_per_step(r, world_size));
  // Steps from token counts, checked before the conversion: a double beyond int64's range converts to garbage
  // (1e30 tokens became a one-step run).
  auto steps_for = [&](const char* field, double tokens) {
    const double steps = std::ceil(tokens / tps);
    if (!(steps <= 1e15)) fail(field, "gives " + std::to_string(steps) + " steps of " + std::to_string(int64_t(tps)) +
                                          " tokens, more than the 1e15 a run can take");
    return int64_t(steps);
  };
  if (r.total_tokens > 0) r.schedule.total_steps = std::max<int64_t>(1, steps_for("total_tokens", r.total_tokens));
  if (r.warmup_tokens >= 0) r.schedule.warmup_steps = steps_for("warmup_tokens", r.warmup_tokens);
  if (r.schedule.warmup_steps < 0)  // auto: 10% of the run, leaving room for the decay
    r.schedule.warmup_steps = std::max<int64_t>(
        0, std::min<int64_t>(std::max<int64_t>(1, std::llround(0.1 * double(r.schedule.total_steps))),
                             decay_start(r.schedule)));
  validate_schedule(r.schedule, source);
  if (!(r.adamw.beta1 >= 0 && r.adamw.beta1 < 1)) fail("beta1", "expected [0, 1)");
  if (!(r.adamw.beta2 >= 0 && r.adamw.beta2 < 1)) fail("beta2", "expected [0, 1)");
  if (!(r.adamw.eps > 0)) fail("eps", "expected > 0");
  if (!(r.adamw.weight_decay >= 0)) fail("weight_decay", "expected >= 0");
  if (!(r.zclip.alpha > 0 && r.zclip.alpha < 1)) fail("zclip_alpha", "expected (0, 1)");
  if (!(r.zclip.z_threshold > 0)) fail("zclip_z", "expected > 0");
  if (r.zclip.warmup_steps < 1) fail("zclip_warmup", "expected >= 1");
  if (!(r.zclip.max_norm >= 0)) fail("max_grad_norm", "expected >= 0 (0 = no absolute cap)");
  if (!(r.loss_spike_z >= 0)) fail("loss_spike_z", "expected >= 0 (0 = off)");
  if (r.max_skipped_steps < 1) fail("max_skipped_steps", "expected >= 1");
  if (r.log_every < 1) fail("log_every", "expected >= 1");
  if (r.eval_every < 0 || r.save_every < 0) fail("eval_every/save_every", "expected >= 0");
  if (r.eval_batches < 0) fail("eval_batches", "expected >= 0");
  if (r.keep_checkpoints < 1) fail("keep_checkpoints", "expected >= 1");
}

}  // namespace gqe
