#include "gqe/bench/prefill_bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "gqe/attention/attention.h"
#include "gqe/attention/attention_path.h"
#include "gqe/core/autocast.h"
#include "gqe/core/error.h"
#include "gqe/core/format.h"
#include "gqe/core/machine.h"
#include "gqe/model/transformer.h"
#ifdef GQE_WITH_CUDA
#include <ATen/SDPBackend.h>
#include <torch/cuda.h>

#include "gqe/kernels/cuda/gqe_attention.h"
#include "gqe/kernels/cuda/sdpa_attention.h"
#endif

namespace gqe::bench {
namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}

struct Timing {
  double median_s = 0, min_s = 0, max_s = 0;
  int runs = 0;
};

// GQA and GQE timed in alternation: one warm-up call of each, then pairs (GQA, GQE) until each has
// `repeats` timed calls (at least one) or the pair budget `budget_s` is spent. Alternating exposes both to
// the same machine state (other load, clock, page cache), so their ratio is steadier than two separate
// series. Returns the median of each.
std::array<Timing, 2> time_pair(const std::function<void()>& f0, const std::function<void()>& f1, int repeats,
                                double budget_s) {
  using clock = std::chrono::steady_clock;
  const std::function<void()>* f[2] = {&f0, &f1};
  std::vector<double> t[2];
  for (auto* g : f) (*g)();
  double spent = 0;
  while (int(t[0].size()) < std::max(1, repeats) && (t[0].empty() || spent < budget_s)) {
    for (int i = 0; i < 2; ++i) {
      auto t0 = clock::now();
      (*f[i])();
      t[i].push_back(std::chrono::duration<double>(clock::now() - t0).count());
      spent += t[i].back();
    }
  }
  std::array<Timing, 2> out;
  for (int i = 0; i < 2; ++i) {
    std::sort(t[i].begin(), t[i].end());
    out[i] = {t[i][t[i].size() / 2], t[i].front(), t[i].back(), int(t[i].size())};
  }
  return out;
}

// The latency fields of a row from a timed pair: median, min and max in ms, the GQA/GQE ratio, the runs.
void set_latency(BenchRow& r, const std::array<Timing, 2>& t) {
  r.gqa_ms = t[0].median_s * 1e3, r.gqe_ms = t[1].median_s * 1e3;
  r.gqa_min_ms = t[0].min_s * 1e3, r.gqa_max_ms = t[0].max_s * 1e3;
  r.gqe_min_ms = t[1].min_s * 1e3, r.gqe_max_ms = t[1].max_s * 1e3;
  r.ratio = t[0].median_s / t[1].median_s;
  r.runs = std::min(t[0].runs, t[1].runs);
}

// Where the bench runs: the device, and on CUDA bf16 autocast plus a synchronisation after each call.
struct BenchDevice {
  at::Device device{at::kCPU};
  bool cuda() const { return device.is_cuda(); }
  at::TensorOptions float_options() const { return at::TensorOptions(device).dtype(cuda() ? at::kBFloat16 : at::kFloat); }
  at::TensorOptions long_options() const { return at::TensorOptions(device).dtype(at::kLong); }
  // f, then wait for the device: the timed unit.
  std::function<void()> timed(std::function<void()> f) const {
    if (!cuda()) return f;
    return [f = std::move(f)] {
      {
        CudaAutocastScope autocast(true);
        f();
      }
#ifdef GQE_WITH_CUDA
      torch::cuda::synchronize();
#endif
    };
  }
};

BenchDevice bench_device(const std::string& name) {
  BenchDevice d;
  try {
    d.device = at::Device(name);
  } catch (const std::exception&) {
    throw Error("gqe bench: --device '" + name + "': expected cpu or cuda[:N]");
  }
  if (d.cuda()) {
#ifdef GQE_WITH_CUDA
    if (!at::hasCUDA()) throw Error("gqe bench: --device " + name + ": no usable CUDA device");
#else
    throw Error("gqe bench: --device " + name + ": this gqe was built without the CUDA path (docs/gpu.md)");
#endif
  } else if (!d.device.is_cpu()) {
    throw Error("gqe bench: --device '" + name + "': expected cpu or cuda[:N]");
  }
  return d;
}

}  // namespace

double published_gpu_peak_gflops(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H100") && (has("PCIe") || has("PCI"))) return 756e3;
  if (has("H100") || has("H200") || has("GH200")) return 989e3;
  return 0;
}

namespace {

double per_token_projection_flops(const ModelConfig& c) {
  const AttentionConfig& a = c.attention;
  const double d = double(c.hidden_size), dh = double(a.head_dim);
  double f = 2 * d * 2 * a.num_kv_heads * dh;      // K, V
  f += 2 * d * a.active_query_heads() * dh;        // Q: N (GQA) or kG (+1 shared) (GQE)
  f += 2 * double(a.num_slots()) * dh * d;         // W_O
  if (a.is_gqe()) f += 2 * d * a.num_heads;        // router d -> G*M
  return f;
}

double mlp_flops_per_token(const ModelConfig& c) {
  const double d = double(c.hidden_size), I = double(c.intermediate_size);
  return (c.mlp_type == MlpType::swiglu ? 3 : 2) * 2 * d * I;
}

// The SDPA backend of a prefill's attention call for config c, with queries like q and keys like k: GQA's
// one call (N heads over G), GQE's one call of its slot and shared heads (kernels/cuda/gqe_attention.h).
std::string sdpa_backend_of(const ModelConfig& c, const at::Tensor& q, const at::Tensor& k) {
#ifdef GQE_WITH_CUDA
  const AttentionConfig& a = c.attention;
  const int64_t B = q.size(0), n = q.size(1), G = a.num_kv_heads, dh = a.head_dim;
  if (!a.is_gqe()) return kernels::cuda::sdpa_backend(q, k, k, 0);
  const bool one = kernels::cuda::choose_shared_head_layout(G, a.top_k, n) == kernels::cuda::SharedHeadLayout::one_call;
  const int64_t Hq = one ? (G + 1) * a.top_k : G * a.top_k, Hk = one ? G + 1 : G;
  return kernels::cuda::sdpa_backend(at::empty({B, n, Hq, dh}, q.options()), at::empty({B, n, Hk, dh}, k.options()),
                                     at::empty({B, n, Hk, dh}, k.options()), 0) +
         (one ? " (one call)" : " (two calls)");
#else
  return "";
#endif
}

// The SDPA backend of a decode step over keys K [Bd, L, G, d_h] (a ragged batch for Bd > 1: a key mask).
std::string decode_backend_of(const ModelConfig& c, const at::Tensor& K, int64_t Bd) {
#ifdef GQE_WITH_CUDA
  const int64_t L = K.size(1);
  at::Tensor q = at::empty({Bd, 1, c.attention.num_heads, c.attention.head_dim}, K.options());
  if (Bd > 1) {
    at::Tensor mask = at::ones({Bd, 1, 1, L}, K.options().dtype(at::kBool));
    const int64_t r = at::_fused_sdp_choice(q.view({Bd, K.size(2), -1, K.size(3)}), K.transpose(1, 2), K.transpose(1, 2),
                                            mask, 0.0, false);
    return r == int64_t(at::SDPBackend::efficient_attention) ? "efficient_attention (masked)"
           : r == int64_t(at::SDPBackend::math)              ? "math (masked)"
                                                             : "backend " + std::to_string(r) + " (masked)";
  }
  return kernels::cuda::sdpa_backend(q, K, K, L - 1);
#else
  return "";
#endif
}

void randomise_router(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& p : m.named_parameters())
    if (p.key().size() >= 13 && p.key().substr(p.key().size() - 13) == "router.weight")
      p.value().normal_(0.0, 1.0 / std::sqrt(double(p.value().size(1))));
}

}  // namespace

ModelConfig shape_config(BenchShape shape, AttentionKind kind) {
  ModelConfig c;
  c.vocab_size = 256;
  c.num_hidden_layers = 2;
  c.max_position_embeddings = 1 << 20;
  c.attention.kind = kind;
  c.attention.top_k = 1;
  switch (shape) {
    case BenchShape::paper:
      c.hidden_size = 1024, c.intermediate_size = 2816;
      c.attention.num_heads = 16, c.attention.num_kv_heads = 8, c.attention.head_dim = 64;
      break;
    case BenchShape::small:
      c.hidden_size = 256, c.intermediate_size = 704;
      c.attention.num_heads = 8, c.attention.num_kv_heads = 4, c.attention.head_dim = 32;
      break;
  }
  return c;
}

double attention_core_flops(const ModelConfig& c, int64_t n) {
  return 2.0 * 2.0 * double(c.attention.active_query_heads()) * double(c.attention.head_dim) * double(n) *
         double(n + 1) / 2.0;
}

double flop_limit(const ModelConfig& gqa, const ModelConfig& gqe, PrefillLevel level, int64_t n) {
  auto flops = [&](const ModelConfig& c) {
    double f = attention_core_flops(c, n);
    if (level != PrefillLevel::core) f += double(n) * per_token_projection_flops(c);
    if (level == PrefillLevel::block || level == PrefillLevel::model) f += double(n) * mlp_flops_per_token(c);
    // Whole model: every layer, plus the LM head over all n positions (the embedding is a lookup).
    if (level == PrefillLevel::model) f = f * double(c.num_hidden_layers) + double(n) * 2.0 * c.hidden_size * c.vocab_size;
    return f;
  };
  return flops(gqa) / flops(gqe);
}

std::vector<BenchRow> run_bench(const BenchOptions& opt, std::ostream* log) {
  std::vector<BenchRow> rows;
  auto emit = [&](BenchRow r) {
    r.peak_rss_mb = peak_rss_mb();
    // The bench's own threads keep the load near their count; more means other work shared the cores.
    if (log && r.load_before > opt.threads + 0.5)
      *log << "warning: load average " << fixed_point(r.load_before) << " before this point, above the " << opt.threads
           << " threads in use: other work on the machine distorts these figures\n";
    if (log) *log << rows_to_table({r}, opt.fma_peak_gflops, opt.peak_label) << std::flush;
    rows.push_back(r);
  };
  const BenchDevice dev = bench_device(opt.device);
  if (log) *log << rows_to_table({}, opt.fma_peak_gflops, opt.peak_label);
  // CUDA: prefill and training on the one pinned backend (both models on the same kernel), decode unpinned.
  auto pin_backend = [&](const std::string& name) {
#ifdef GQE_WITH_CUDA
    if (dev.cuda()) kernels::cuda::pin_sdpa_backend(name);
#else
    (void)name;
#endif
  };
  pin_backend(opt.sdpa_backend);
  torch::NoGradGuard no_grad;
  for (const BenchShape shape_id : opt.shapes) {
    const std::string shape = to_string(shape_id);
    ModelConfig cfg[2] = {shape_config(shape_id, AttentionKind::gqa), shape_config(shape_id, AttentionKind::gqe)};
    for (auto& c : cfg) c.attention.implementation = opt.implementation;
    const int64_t d = cfg[0].hidden_size, dh = cfg[0].attention.head_dim, G = cfg[0].attention.num_kv_heads;
    for (const PrefillLevel level : opt.levels) {
      // Modules are built once per level; inputs per length.
      std::shared_ptr<AttentionBlock> attn[2];
      std::shared_ptr<DecoderLayer> block[2];
      std::shared_ptr<LanguageModel> model[2];
      for (int i = 0; i < 2; ++i) {
        if (level == PrefillLevel::layer) attn[i] = make_attention(cfg[i]), randomise_router(*attn[i]), attn[i]->to(dev.device);
        if (level == PrefillLevel::block)
          block[i] = std::make_shared<DecoderLayer>(cfg[i]), randomise_router(*block[i]), block[i]->to(dev.device);
        if (level == PrefillLevel::model)
          model[i] = std::make_shared<LanguageModel>(cfg[i]), randomise_router(*model[i]), model[i]->to(dev.device);
      }
      for (int64_t Bp : opt.prefill_batches) {
        for (int64_t n : opt.lengths) {
          for (const AttentionDtype dt : opt.dtypes) {
          const bool bf16 = dt == AttentionDtype::bf16;
          const CpuAttentionDtypeScope dtype_scope(bf16 ? at::kBFloat16 : at::kFloat);
          BenchRow r;
          r.load_before = load_average_1min();
          r.section = "prefill", r.shape = shape, r.n = n;
          r.level = std::string(to_string(level)) + (Bp == 1 ? "" : "-b" + std::to_string(Bp)) + (bf16 ? "-bf16" : "");
          std::function<void()> f[2];
          for (int i = 0; i < 2; ++i) {
            if (level == PrefillLevel::core) {
              const int64_t H = cfg[i].attention.is_gqe() ? cfg[i].attention.top_k * G : cfg[i].attention.num_heads;
              at::Tensor q = at::randn({Bp, n, H, dh}, dev.float_options()), k = at::randn({Bp, n, G, dh}, dev.float_options()),
                         v = at::randn({Bp, n, G, dh}, dev.float_options()), qs = at::randn({Bp, n, 1, dh}, dev.float_options());
              if (bf16) k = k.to(at::kBFloat16), v = v.to(at::kBFloat16);  // as a bf16 KV cache holds them
              const bool gqe = cfg[i].attention.is_gqe();
              const AttentionPath& path = attention_path_for(cfg[i].attention, q);  // the kernels a layer would use
              f[i] = [=, &path] {
                if (gqe)  // the slot heads, and the shared head on the mean K/V, as the layer computes them
                  path.attend_slots_and_shared(q, qs, k, v, 0, nullptr);
                else
                  path.attend(q, k, v, 0);
              };
              if (dev.cuda()) r.backend += std::string(i ? ", GQE " : "GQA ") + sdpa_backend_of(cfg[i], q, k);
            } else if (level == PrefillLevel::model) {
              auto m = model[i];
              at::Tensor tok = at::randint(0, cfg[i].vocab_size, {Bp, n}, dev.long_options());
              f[i] = [m, tok] { m->forward(tok); };
            } else {
              at::Tensor x = at::randn({Bp, n, d}, at::TensorOptions(dev.device));
              if (level == PrefillLevel::layer) {
                auto a = attn[i];
                f[i] = [a, x] { a->forward(x, nullptr); };
              } else {
                auto b = block[i];
                f[i] = [b, x] { b->forward(x, nullptr); };
              }
            }
          }
          const auto t = time_pair(dev.timed(f[0]), dev.timed(f[1]), opt.repeats, opt.seconds_per_point);
          set_latency(r, t);
          r.flop_limit = flop_limit(cfg[0], cfg[1], level, n);
          if (level == PrefillLevel::core) {
            r.gqa_gflops = double(Bp) * attention_core_flops(cfg[0], n) / t[0].median_s / 1e9;
            r.gqe_gflops = double(Bp) * attention_core_flops(cfg[1], n) / t[1].median_s / 1e9;
          }
          emit(r);
          }
        }
      }
    }

    if (opt.train) {
      // Forward + backward on one sequence (no optimizer step): the 2-layer LM with its loss, or one layer or
      // block with a random probe standing in for the gradient from above.
      torch::AutoGradMode grad_on(true);
      at::Tensor tok = at::randint(0, cfg[0].vocab_size, {1, opt.train_length + 1}, dev.long_options());
      at::Tensor in = tok.narrow(1, 0, opt.train_length), target = tok.narrow(1, 1, opt.train_length);
      // The layer's input wants its gradient too, as it does inside a model (the layers below train).
      at::Tensor x = at::randn({1, opt.train_length, d}, at::TensorOptions(dev.device)).requires_grad_(),
                 probe = at::randn_like(x);
      for (const PrefillLevel level : opt.train_levels) {
        BenchRow r;
        r.load_before = load_average_1min();
        r.section = "train", r.shape = shape, r.n = opt.train_length;
        r.level = level == PrefillLevel::model ? std::string("lm-2layer") : std::string(to_string(level));
        std::function<void()> f[2];
        for (int i = 0; i < 2; ++i) {
          const double w = cfg[i].attention.aux_loss_weight;
          if (level == PrefillLevel::model) {
            auto m = std::make_shared<LanguageModel>(cfg[i]);
            randomise_router(*m), m->to(dev.device);
            f[i] = [m, in, target, w] {
              m->zero_grad();
              LMOutput o = m->forward(in);
              (LanguageModel::lm_loss(o.logits.to(at::kFloat), target) + w * o.aux_loss.to(at::kFloat)).backward();
            };
          } else if (level == PrefillLevel::layer) {
            auto a = make_attention(cfg[i]);
            randomise_router(*a), a->to(dev.device);
            f[i] = [a, x, probe, w] {
              a->zero_grad(), x.mutable_grad().reset();
              AttentionResult o = a->forward(x, nullptr);
              ((o.y * probe).sum() + w * o.aux_loss).backward();
            };
          } else {
            auto b = std::make_shared<DecoderLayer>(cfg[i]);
            randomise_router(*b), b->to(dev.device);
            f[i] = [b, x, probe, w] {
              b->zero_grad(), x.mutable_grad().reset();
              AttentionResult o = b->forward(x, nullptr);
              ((o.y * probe).sum() + w * o.aux_loss).backward();
            };
          }
        }
        const auto t = time_pair(dev.timed(f[0]), dev.timed(f[1]), std::max(1, opt.repeats / 2), opt.seconds_per_point);
        set_latency(r, t);
        r.gqa_tok_s = double(opt.train_length) / t[0].median_s, r.gqe_tok_s = double(opt.train_length) / t[1].median_s;
        // Training FLOPs are ~3x forward for both; the forward FLOP ratio at the level bounds it.
        r.flop_limit = flop_limit(cfg[0], cfg[1], level, opt.train_length);
        emit(r);
      }
    }

    if (opt.decode) {
      pin_backend("auto");
      // One attention layer decoding one token for each of Bd sequences against caches of random (post-RoPE)
      // keys: L of them for one sequence, L/2 .. L for several (CPU: GQA and GQE through the same fused
      // decode kernel, kernels/gqe_decode.h).
      for (int64_t Bd : opt.decode_batches) {
        for (int64_t L : opt.decode_lengths) {
          for (const AttentionDtype dt : opt.dtypes) {
          const bool bf16 = dt == AttentionDtype::bf16;
          const CpuAttentionDtypeScope dtype_scope(bf16 ? at::kBFloat16 : at::kFloat);  // the caches' dtype
          BenchRow r;
          r.load_before = load_average_1min();
          r.section = "decode", r.shape = shape, r.n = L;
          r.level = (Bd == 1 ? std::string("layer") : "layer-b" + std::to_string(Bd)) + (bf16 ? "-bf16" : "");
          std::shared_ptr<AttentionBlock> a[2];
          auto cache = std::make_shared<std::array<LayerKVCache, 2>>();
          std::function<void()> f[2];
          at::Tensor K = at::randn({Bd, L, G, dh}, dev.float_options()), V = at::randn({Bd, L, G, dh}, dev.float_options());
          at::Tensor x = at::randn({Bd, 1, d}, at::TensorOptions(dev.device));
          // Sequences of unequal lengths, spread evenly over L/2 .. L (a ragged cache); one sequence: L.
          std::vector<int64_t> lens(static_cast<size_t>(Bd), L);
          for (int64_t b = 1; b < Bd; ++b) lens[size_t(b)] = L - (L / 2) * b / (Bd - 1);
          for (int i = 0; i < 2; ++i) {
            a[i] = make_attention(cfg[i]);
            randomise_router(*a[i]);
            a[i]->to(dev.device);
            (*cache)[i].append(K, V);
            f[i] = [blk = a[i], cache, i, x, L, lens] {
              (*cache)[i].truncate(L);  // same context lengths for every timed token
              if (lens.size() > 1) (*cache)[i].set_lengths(lens);
              blk->forward(x, &(*cache)[i]);
            };
          }
          const auto t = time_pair(dev.timed(f[0]), dev.timed(f[1]), opt.decode_tokens, opt.seconds_per_point);
          set_latency(r, t);
          r.gqa_tok_s = double(Bd) / t[0].median_s, r.gqe_tok_s = double(Bd) / t[1].median_s;
          if (dev.cuda()) r.backend = decode_backend_of(cfg[0], K, Bd);
          emit(r);
          }
        }
      }
      pin_backend(opt.sdpa_backend);
    }
  }
  return rows;
}

namespace {

// The table's columns: labels left-aligned, numbers right-aligned, and every cell followed or preceded by at
// least one space, so that a value wider than its column (a long run's milliseconds) never runs into its
// neighbour's. Rows are printed as each shape finishes, so widths are fixed rather than fitted to the values.
struct TableColumn {
  const char* header;
  int width;
  bool left;
};
constexpr TableColumn kTableColumns[] = {
    {"section", 8, true},    {"shape", 7, true},     {"level", 10, true},     {"n", 7, false},
    {"GQA ms (min..max)", 28, false}, {"GQE ms (min..max)", 28, false}, {"ratio", 7, false},
    {"limit", 7, false},     {"%limit", 7, false},   {"GQA GF/s", 14, false}, {"GQE GF/s", 14, false},
    {"GQA tok/s", 10, false}, {"GQE tok/s", 10, false}, {"runs", 5, false},    {"RSS MB", 8, false}};

void write_table_line(std::ostream& o, const std::vector<std::string>& cells) {
  for (size_t i = 0; i < cells.size(); ++i) {
    const TableColumn& c = kTableColumns[i];
    if (c.left) o << std::left << std::setw(c.width - 1) << cells[i] << ' ';
    else o << ' ' << std::right << std::setw(c.width - 1) << cells[i];
  }
  o << "\n";
}

}  // namespace

std::string rows_to_table(const std::vector<BenchRow>& rows, double fma_peak_gflops, const std::string& peak_label) {
  std::ostringstream o;
  auto spread = [](double med, double lo, double hi) {
    return fixed_point(med) + " (" + fixed_point(lo) + ".." + fixed_point(hi) + ")";
  };
  auto gflops = [&](double g) {
    if (g <= 0) return std::string("-");
    return fixed_point(g, 1) + (fma_peak_gflops > 0 ? " (" + fixed_point(100 * g / fma_peak_gflops, 0) + "%)" : "");
  };
  if (rows.empty()) {
    std::vector<std::string> headers;
    for (const TableColumn& c : kTableColumns) headers.push_back(c.header);
    write_table_line(o, headers);
    if (fma_peak_gflops > 0)
      o << "(GF/s in parentheses: % of " << peak_label << ", " << fixed_point(fma_peak_gflops, 1) << " GFLOP/s)\n";
    return o.str();
  }
  for (const BenchRow& r : rows) {
    write_table_line(o, {r.section, r.shape, r.level, std::to_string(r.n), spread(r.gqa_ms, r.gqa_min_ms, r.gqa_max_ms),
                         spread(r.gqe_ms, r.gqe_min_ms, r.gqe_max_ms), fixed_point(r.ratio),
                         r.flop_limit > 0 ? fixed_point(r.flop_limit) : "-",
                         r.flop_limit > 0 ? fixed_point(100 * r.ratio / r.flop_limit, 0) : "-", gflops(r.gqa_gflops),
                         gflops(r.gqe_gflops), r.gqa_tok_s > 0 ? fixed_point(r.gqa_tok_s, 1) : "-",
                         r.gqe_tok_s > 0 ? fixed_point(r.gqe_tok_s, 1) : "-", std::to_string(r.runs),
                         fixed_point(r.peak_rss_mb, 0)});
    if (!r.backend.empty()) o << "  SDPA backend: " << r.backend << "\n";
  }
  return o.str();
}

std::string rows_to_csv(const std::vector<BenchRow>& rows) {
  std::ostringstream o;
  o << "section,shape,level,n,gqa_ms,gqe_ms,ratio,flop_limit,gqa_attn_gflops,gqe_attn_gflops,gqa_tok_s,gqe_tok_s,"
       "runs,peak_rss_mb,gqa_min_ms,gqa_max_ms,gqe_min_ms,gqe_max_ms,load_before,backend\n";
  o << std::setprecision(6);
  for (const BenchRow& r : rows)
    o << r.section << "," << r.shape << "," << r.level << "," << r.n << "," << r.gqa_ms << "," << r.gqe_ms << ","
      << r.ratio << "," << r.flop_limit << "," << r.gqa_gflops << "," << r.gqe_gflops << "," << r.gqa_tok_s << ","
      << r.gqe_tok_s << "," << r.runs << "," << r.peak_rss_mb << "," << r.gqa_min_ms << "," << r.gqa_max_ms << ","
      << r.gqe_min_ms << "," << r.gqe_max_ms << "," << r.load_before << "," << r.backend << "\n";
  return o.str();
}

std::string rows_to_json(const std::vector<BenchRow>& rows, const std::string& runtime, const BenchOptions& opt,
                         const nlohmann::json& machine) {
  nlohmann::json j;
  j["runtime"] = runtime;
  j["machine"] = machine;
  j["implementation"] = to_string(opt.implementation);
  j["device"] = opt.device;
  j["repeats"] = opt.repeats;
  if (opt.device != "cpu") j["sdpa_backend_pinned"] = opt.sdpa_backend;
  j["peak_gflops"] = opt.fma_peak_gflops;
  j["peak"] = opt.peak_label;
  j["note"] =
      "medians after one warm-up (min and max beside them); ratio = GQA latency / GQE latency; flop_limit = GQA/GQE forward FLOPs at that "
      "level; attention GFLOP/s count 2*2*heads*d_h*n(n+1)/2";
  j["rows"] = nlohmann::json::array();
  for (const BenchRow& r : rows)
    j["rows"].push_back({{"section", r.section}, {"shape", r.shape}, {"level", r.level}, {"n", r.n},
                         {"gqa_ms", r.gqa_ms}, {"gqe_ms", r.gqe_ms}, {"ratio", r.ratio},
                         {"flop_limit", r.flop_limit}, {"gqa_attn_gflops", r.gqa_gflops},
                         {"gqe_attn_gflops", r.gqe_gflops}, {"gqa_tok_s", r.gqa_tok_s}, {"gqe_tok_s", r.gqe_tok_s},
                         {"runs", r.runs}, {"peak_rss_mb", r.peak_rss_mb}, {"gqa_min_ms", r.gqa_min_ms},
                         {"gqa_max_ms", r.gqa_max_ms}, {"gqe_min_ms", r.gqe_min_ms}, {"gqe_max_ms", r.gqe_max_ms},
                         {"load_before", r.load_before}, {"sdpa_backend", r.backend}});
  return j.dump(2);
}

std::string gnuplot_script(const std::vector<BenchRow>& rows, const std::string& csv_path,
                           const std::string& png_path) {
  std::vector<std::pair<std::string, std::string>> series;
  for (const BenchRow& r : rows)
    if (r.section == "prefill" &&
        std::find(series.begin(), series.end(), std::make_pair(r.shape, r.level)) == series.end())
      series.emplace_back(r.shape, r.level);
  std::ostringstream o;
  o << "set terminal pngcairo size 900,600 noenhanced\n"
    << "set output '" << png_path << "'\n"
    << "set datafile separator ','\n"
    << "set logscale x 2\nset xlabel 'sequence length n (tokens)'\nset ylabel 'GQA latency / GQE latency'\n"
    << "set title 'GQE prefill speedup over GQA (solid: measured; dashed: FLOP limit)'\n"
    << "set key outside right\nset grid\nset yrange [0:*]\nset offsets 0, 0, 0.1, 0\n";
  if (series.empty()) {
    o << "plot 1 title 'no prefill rows'\n";
    return o.str();
  }
  o << "plot ";
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& [shape, level] = series[i];
    const std::string sel = "(strcol(1) eq 'prefill' && strcol(2) eq '" + shape + "' && strcol(3) eq '" + level + "')";
    if (i) o << ", \\\n     ";
    o << "'" << csv_path << "' skip 1 using 4:(" << sel << " ? $7 : 1/0) with linespoints lw 2 lc " << i + 1
      << " title '" << shape << " " << level << "', \\\n     '" << csv_path << "' skip 1 using 4:(" << sel
      << " ? $8 : 1/0) with lines dt 2 lc " << i + 1 << " notitle";
  }
  o << "\n";
  return o.str();
}

}  // namespace gqe::bench
