#include "gqe/bench/model_decode.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <system_error>
#include <unistd.h>
#include <sstream>

#include "gqe/core/error.h"
#include "gqe/core/format.h"
#include "gqe/core/machine.h"
#include "gqe/io/checkpoint.h"
#include "gqe/model/transformer.h"

namespace gqe::bench {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Seconds for `tokens` greedy decode steps of `batch` sequences after a prompt of `context` random tokens.
double time_decode(LanguageModel& model, int64_t batch, int64_t context, int tokens) {
  torch::NoGradGuard no_grad;
  KVCache cache = model.make_cache();
  // host: the bench runs on the CPU
  const at::Tensor prompt = at::randint(model.config().vocab_size, {batch, context}, at::TensorOptions().dtype(at::kLong));
  at::Tensor next = model.forward(prompt, &cache).logits.select(1, context - 1).argmax(-1).view({batch, 1});
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < tokens; ++i) next = model.forward(next, &cache).logits.select(1, 0).argmax(-1).view({batch, 1});
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The model as `gqe generate` holds it: written as a checkpoint and loaded back, so that its weights live in
// the mapped file as a loaded checkpoint's do (not where the allocator put the random ones). The files are
// removed at once; the mapping keeps them until the model goes.
std::shared_ptr<LanguageModel> as_loaded(LanguageModel&& model) {
  static int serial = 0;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("gqe-bench-model-" + std::to_string(::getpid()) + "-" + std::to_string(serial++));
  save_model_checkpoint(dir.string(), model);
  std::shared_ptr<LanguageModel> loaded;
  try {
    loaded = load_model_checkpoint(dir.string());
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    throw;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return loaded;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

double decode_weight_bytes(const ModelConfig& cfg, int64_t batch) {
  LanguageModel model(cfg, WeightInit::none);  // only the shapes are read
  const AttentionConfig& a = cfg.attention;
  const double q_share =
      a.is_gqe() ? std::min(1.0, double(batch * a.top_k) / double(a.experts_per_group())) : 1.0;
  double bytes = 0;
  for (const auto& p : model.named_parameters()) {
    double b = double(p.value().numel()) * double(p.value().element_size());
    if (p.key() == "embed_tokens.weight" && !cfg.tie_word_embeddings) b = b * double(batch) / double(cfg.vocab_size);
    if (ends_with(p.key(), ".attn.q_proj.weight")) b *= q_share;
    bytes += b;
  }
  return bytes;
}

std::vector<ModelDecodeRow> run_model_decode(const ModelDecodeOptions& opt, std::ostream* log) {
  if (opt.context < 1) throw Error("gqe bench: --decode-model-context must be >= 1");
  if (opt.tokens < 1) throw Error("gqe bench: --decode-tokens must be >= 1");
  std::vector<ModelConfig> cfgs;
  std::vector<std::shared_ptr<LanguageModel>> models;
  for (const std::string& path : opt.configs) {
    cfgs.push_back(load_model_config(path));
    if (opt.context + opt.tokens > cfgs.back().max_position_embeddings)
      throw Error("gqe bench: " + path + ": context " + std::to_string(opt.context) + " + " +
                  std::to_string(opt.tokens) + " decode tokens exceed max_position_embeddings " +
                  std::to_string(cfgs.back().max_position_embeddings));
    models.push_back(as_loaded(LanguageModel(cfgs.back())));
  }
  if (log) *log << model_decode_table({}, opt.read_bandwidth_gbs) << std::flush;
  std::vector<ModelDecodeRow> rows;
  for (int64_t B : opt.batches) {
    if (B < 1) throw Error("gqe bench: --decode-model-batches must be >= 1");
    const double load = load_average_1min();
    // The models in turn, run by run, so that a change of load touches them alike; the first run warms up.
    std::vector<std::vector<double>> tok_s(models.size());
    for (int rep = 0; rep <= opt.repeats; ++rep)
      for (size_t m = 0; m < models.size(); ++m) {
        const double s = time_decode(*models[m], B, opt.context, opt.tokens);
        if (rep > 0) tok_s[m].push_back(double(B) * opt.tokens / s);
      }
    for (size_t m = 0; m < models.size(); ++m) {
      ModelDecodeRow r;
      r.model = std::filesystem::path(opt.configs[m]).stem().string();
      r.kind = cfgs[m].attention.is_gqe() ? "gqe" : "gqa";
      r.batch = B, r.context = opt.context;
      r.tok_s = median(tok_s[m]);
      r.min_tok_s = *std::min_element(tok_s[m].begin(), tok_s[m].end());
      r.max_tok_s = *std::max_element(tok_s[m].begin(), tok_s[m].end());
      const double bytes = decode_weight_bytes(cfgs[m], B);
      r.weight_mb = bytes / 1e6;
      r.limit_tok_s = opt.read_bandwidth_gbs > 0 ? opt.read_bandwidth_gbs * 1e9 / bytes * double(B) : 0;
      r.load_before = load;
      if (log) *log << model_decode_table({r}, opt.read_bandwidth_gbs) << std::flush;
      rows.push_back(r);
    }
    if (log && load > opt.threads + 0.5)
      *log << "warning: load average " << fixed_point(load) << " above the " << opt.threads << " threads in use\n";
  }
  return rows;
}

std::string model_decode_table(const std::vector<ModelDecodeRow>& rows, double read_bandwidth_gbs) {
  std::ostringstream o;
  auto cell = [&](const std::string& s, int w) { o << std::string(size_t(std::max(0, w - int(s.size()))), ' ') << s << "  "; };
  if (rows.empty()) {
    o << "whole-model decode (random fp32 weights, greedy): tok/s = tokens of all sequences per second, median "
         "(min..max); limit = read bandwidth " << fixed_point(read_bandwidth_gbs, 1)
      << " GB/s / weight MB a step reads x batch\n";
    cell("model", 16), cell("kind", 4), cell("batch", 5), cell("ctx", 5), cell("tok/s", 8), cell("min..max", 13),
        cell("weight MB", 9), cell("limit", 7), cell("% limit", 7);
    o << "\n";
    return o.str();
  }
  for (const ModelDecodeRow& r : rows) {
    cell(r.model, 16), cell(r.kind, 4), cell(std::to_string(r.batch), 5), cell(std::to_string(r.context), 5);
    cell(fixed_point(r.tok_s, 2), 8), cell(fixed_point(r.min_tok_s, 2) + ".." + fixed_point(r.max_tok_s, 2), 13);
    cell(fixed_point(r.weight_mb, 1), 9), cell(r.limit_tok_s > 0 ? fixed_point(r.limit_tok_s, 1) : "-", 7);
    cell(r.limit_tok_s > 0 ? fixed_point(100.0 * r.tok_s / r.limit_tok_s, 1) + "%" : "-", 7);
    o << "\n";
  }
  return o.str();
}

nlohmann::json model_decode_json(const std::vector<ModelDecodeRow>& rows) {
  nlohmann::json j = nlohmann::json::array();
  for (const ModelDecodeRow& r : rows)
    j.push_back({{"model", r.model},
                 {"kind", r.kind},
                 {"batch", r.batch},
                 {"context", r.context},
                 {"tok_s", r.tok_s},
                 {"min_tok_s", r.min_tok_s},
                 {"max_tok_s", r.max_tok_s},
                 {"weight_mb", r.weight_mb},
                 {"limit_tok_s", r.limit_tok_s},
                 {"percent_of_limit", r.limit_tok_s > 0 ? 100.0 * r.tok_s / r.limit_tok_s : 0.0},
                 {"load_before", r.load_before}});
  return j;
}

}  // namespace gqe::bench
