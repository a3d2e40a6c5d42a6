#include "gqe/eval/routing.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "gqe/core/error.h"
#include "gqe/data/shard.h"
#include "gqe/eval/val_loss.h"

namespace gqe::eval {

namespace {

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t j = 1; j < n; ++j)
      if ((static_cast<unsigned char>(s[i + j]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

std::string fixed(double x, int digits) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(digits) << x;
  return o.str();
}

double entropy_of(const std::vector<double>& p) {
  double h = 0;
  for (double x : p)
    if (x > 0) h -= x * std::log(x);
  return h;
}

}  // namespace

std::string printable_token(const Tokenizer& tok, int64_t token) {
  const std::string s = tok.decode({token});
  const bool utf8 = valid_utf8(s);
  std::string out = "'";
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\'' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8)) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "'";
}

RouteStats collect_routing(LanguageModel& model, const std::vector<int64_t>& tokens, const RouteOptions& opt,
                           const std::function<void(int64_t, int64_t)>& progress) {
  const auto gqe = model.gqe_layers();
  if (gqe.empty())
    throw Error(std::string("routing analytics need a GQE checkpoint; this model's attention is '") +
                to_string(model.config().attention.kind) + "'");
  const auto& a = model.config().attention;
  const int64_t L = int64_t(gqe.size()), G = a.num_kv_heads, M = a.experts_per_group(), k = a.top_k;
  const int64_t V = model.config().vocab_size;
  if (opt.seq_len <= 0 || opt.batch_size <= 0) throw Error("routing: sequence length and batch size must be positive");
  if (opt.seq_len > model.config().max_position_embeddings)
    throw Error("routing: sequence length " + std::to_string(opt.seq_len) + " exceeds max_position_embeddings " +
                std::to_string(model.config().max_position_embeddings));
  check_token_ids(tokens.data(), tokens.size(), V, "routing");

  // Accumulators (double, CPU).
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  // host: the statistics are summed on the CPU, whichever device runs the model.
  at::Tensor incl = at::zeros({L, G, M}, f64);        // tokens whose selection includes m
  at::Tensor top1 = at::zeros({L, G, M}, f64);        // tokens whose top-1 is m
  at::Tensor prob = at::zeros({L, G, M}, f64);        // sum of router probabilities
  at::Tensor ent = at::zeros({L, G}, f64);            // sum of per-token entropies
  at::Tensor agree = at::zeros({L, L, G}, f64);       // top-1 equal in both layers
  at::Tensor by_token = at::zeros({L, G * M * V}, f64);  // (g,m,token) inclusion counts
  at::Tensor token_total = at::zeros({V}, f64);

  const at::Tensor all = at::tensor(tokens, at::kLong);  // [N]; host: windows are copied to the model
  // Every token position is routed, so use windows over all N tokens (the last one predicts nothing,
  // but its routing is still informative).
  std::vector<std::pair<int64_t, int64_t>> windows;
  for (int64_t s = 0; s < int64_t(tokens.size()); s += opt.seq_len)
    windows.emplace_back(s, std::min(opt.seq_len, int64_t(tokens.size()) - s));
  torch::NoGradGuard no_grad;
  model.eval();
  size_t i = 0;
  int64_t n_tok = 0;
  std::vector<uint8_t> choices;  // [N,L,G]
  if (opt.keep_choices) {
    if (M > 256) throw Error("routing: --dump-choices stores expert indices as bytes; this model has " +
                             std::to_string(M) + " experts per group");
    choices.reserve(tokens.size() * size_t(L * G));
  }
  while (i < windows.size()) {
    size_t j = i;
    while (j < windows.size() && int64_t(j - i) < opt.batch_size && windows[j].second == windows[i].second) ++j;
    std::vector<at::Tensor> xs;
    for (size_t w = i; w < j; ++w) xs.push_back(all.narrow(0, windows[w].first, windows[w].second));
    const at::Tensor x = at::stack(xs);  // [B, T]
    model.forward(x.to(model.device()));
    const int64_t BT = x.numel();
    n_tok += BT;
    const at::Tensor tok_flat = x.reshape({BT});
    token_total.index_add_(0, tok_flat, at::ones({BT}, f64));  // host
    std::vector<at::Tensor> firsts;
    for (int64_t l = 0; l < L; ++l) {
      const at::Tensor p = gqe[size_t(l)]->last_router_probs.reshape({BT, G, M}).to(at::kCPU, at::kDouble);  // [BT,G,M]
      const at::Tensor sel = gqe[size_t(l)]->last_selected.reshape({BT, G, k}).to(at::kCPU);                // [BT,G,k]
      const at::Tensor chosen = at::zeros({BT, G, M}, f64).scatter_(-1, sel, 1.0);  // [BT,G,M]; host
      incl[l].add_(chosen.sum(0));
      prob[l].add_(p.sum(0));
      ent[l].sub_((p * p.clamp_min(1e-300).log()).sum(-1).sum(0));
      const at::Tensor first = sel.select(-1, 0);  // [BT, G]
      top1[l].add_(at::zeros({BT, G, M}, f64).scatter_(-1, first.unsqueeze(-1), 1.0).sum(0));  // host
      firsts.push_back(first);
      const at::Tensor g_idx = at::arange(G, at::kLong).view({1, G, 1});  // host
      const at::Tensor flat = ((g_idx * M + sel) * V + tok_flat.view({BT, 1, 1})).reshape({-1});  // [BT*G*k]
      by_token[l].index_add_(0, flat, at::ones({flat.numel()}, f64));  // host
    }
    if (opt.keep_choices) {  // windows are contiguous and stacked in order: row-major [B,T] is data order
      const at::Tensor c = at::stack(firsts, 1).to(at::kByte).contiguous();  // [BT, L, G]
      choices.insert(choices.end(), c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
    }
    for (int64_t l1 = 0; l1 < L; ++l1)
      for (int64_t l2 = 0; l2 < L; ++l2) agree[l1][l2].add_(firsts[size_t(l1)].eq(firsts[size_t(l2)]).to(at::kDouble).sum(0));
    i = j;
    if (progress) progress(int64_t(i), int64_t(windows.size()));
  }

  RouteStats s;
  s.layers = L;
  s.groups = G;
  s.experts = M;
  s.top_k = k;
  s.tokens = n_tok;
  s.min_count = opt.min_count;
  s.top1_choice = std::move(choices);
  const double N = double(n_tok);
  const at::Tensor load = incl / (N * double(k)), P = prob / N, f1 = top1 / N;
  const at::Tensor aux = (incl / N * P).sum(-1) * double(M);  // [L,G]
  auto to_vec = [](const at::Tensor& t) {
    const at::Tensor c = t.contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  s.load = to_vec(load);
  s.mean_prob = to_vec(P);
  s.entropy = to_vec(ent / N);
  s.aux = to_vec(aux);
  s.agreement = to_vec(agree / N);
  // Chance agreement of independent top-1 choices with these marginals: sum_m f1[l1,g,m] f1[l2,g,m].
  s.chance = to_vec((f1.unsqueeze(1) * f1.unsqueeze(0)).sum(-1));  // [L,L,G]
  for (int64_t l = 0; l < L; ++l)
    for (int64_t g = 0; g < G; ++g) {
      std::vector<double> p(static_cast<size_t>(M));
      for (int64_t m = 0; m < M; ++m) p[size_t(m)] = s.load[size_t((l * G + g) * M + m)];
      s.load_entropy.push_back(entropy_of(p));
    }

  // Preferred tokens: highest share of the token's occurrences routed to the expert, then most frequent.
  const std::vector<double> totals = to_vec(token_total);
  const at::Tensor bt = by_token.contiguous();
  const double* counts = bt.data_ptr<double>();
  s.preferred.resize(size_t(L * G * M));
  for (int64_t l = 0; l < L; ++l)
    for (int64_t gm = 0; gm < G * M; ++gm) {
      const double* c = counts + (l * G * M + gm) * V;
      std::vector<PreferredToken> cand;
      for (int64_t v = 0; v < V; ++v)
        if (totals[size_t(v)] >= double(std::max<int64_t>(1, opt.min_count)) && c[v] > 0)
          cand.push_back({v, c[v] / totals[size_t(v)], int64_t(c[v])});
      const size_t n = std::min(cand.size(), size_t(std::max<int64_t>(0, opt.top_tokens)));
      std::partial_sort(cand.begin(), cand.begin() + long(n), cand.end(), [](const PreferredToken& x, const PreferredToken& y) {
        if (x.share != y.share) return x.share > y.share;
        if (x.count != y.count) return x.count > y.count;
        return x.token < y.token;
      });
      cand.resize(n);
      s.preferred[size_t(l * G * M + gm)] = std::move(cand);
    }
  return s;
}

std::string format_routing(const RouteStats& s, const Tokenizer& tok) {
  const int64_t L = s.layers, G = s.groups, M = s.experts;
  std::ostringstream o;
  o << "routing over " << s.tokens << " tokens: " << L << " GQE layers, " << G << " groups x " << M
    << " experts, top-" << s.top_k << " per group\n"
    << "load = share of the group's selections per expert (balanced: " << fixed(1.0 / double(M), 3)
    << "); H = mean router entropy / ln M; load-H = entropy of the load / ln M; aux = M sum_m f P (balanced top-1: 1)\n\n";
  const double lnM = M > 1 ? std::log(double(M)) : 1.0;
  o << "layer group  load" << std::string(size_t(std::max<int64_t>(0, 6 * M - 4)), ' ') << "  H      load-H  aux\n";
  for (int64_t l = 0; l < L; ++l)
    for (int64_t g = 0; g < G; ++g) {
      o << std::setw(5) << l << " " << std::setw(5) << g << "  ";
      for (int64_t m = 0; m < M; ++m) o << fixed(s.load[size_t((l * G + g) * M + m)], 3) << " ";
      o << " " << fixed(s.entropy[size_t(l * G + g)] / lnM, 3) << "  " << fixed(s.load_entropy[size_t(l * G + g)] / lnM, 3)
        << "   " << fixed(s.aux[size_t(l * G + g)], 3) << "\n";
    }
  if (L > 1) {
    o << "\ntop-1 agreement between adjacent layers (same expert index; mean over groups; chance from the loads)\n";
    for (int64_t l = 0; l + 1 < L; ++l) {
      double ag = 0, ch = 0;
      for (int64_t g = 0; g < G; ++g) {
        ag += s.agreement[size_t((l * L + l + 1) * G + g)];
        ch += s.chance[size_t((l * L + l + 1) * G + g)];
      }
      o << "  layers " << l << "-" << l + 1 << ": " << fixed(ag / double(G), 3) << " (chance " << fixed(ch / double(G), 3)
        << ")\n";
    }
  }
  o << "\npreferred tokens (share of the token's occurrences routed to the expert, count; tokens seen >= " << s.min_count
    << " times)\n";
  for (int64_t l = 0; l < L; ++l)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t m = 0; m < M; ++m) {
        o << "  L" << l << " g" << g << " e" << m << ":";
        for (const auto& p : s.preferred[size_t((l * G + g) * M + m)])
          o << " " << printable_token(tok, p.token) << " " << fixed(p.share, 2) << " (" << p.count << ")";
        o << "\n";
      }
  return o.str();
}

nlohmann::ordered_json routing_json(const RouteStats& s, const Tokenizer& tok) {
  const int64_t L = s.layers, G = s.groups, M = s.experts;
  nlohmann::ordered_json j;
  j["tokens"] = s.tokens;
  j["layers"] = L;
  j["groups"] = G;
  j["experts_per_group"] = M;
  j["top_k"] = s.top_k;
  j["min_count"] = s.min_count;
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (int64_t l = 0; l < L; ++l) {
    nlohmann::ordered_json groups = nlohmann::ordered_json::array();
    for (int64_t g = 0; g < G; ++g) {
      nlohmann::ordered_json gj;
      std::vector<double> load, mp;
      nlohmann::ordered_json pref = nlohmann::ordered_json::array();
      for (int64_t m = 0; m < M; ++m) {
        load.push_back(s.load[size_t((l * G + g) * M + m)]);
        mp.push_back(s.mean_prob[size_t((l * G + g) * M + m)]);
        nlohmann::ordered_json pe = nlohmann::ordered_json::array();
        for (const auto& p : s.preferred[size_t((l * G + g) * M + m)])
          pe.push_back({{"token", p.token}, {"text", tok.decode({p.token})}, {"share", p.share}, {"count", p.count}});
        pref.push_back(pe);
      }
      gj["load"] = load;
      gj["mean_prob"] = mp;
      gj["entropy"] = s.entropy[size_t(l * G + g)];
      gj["load_entropy"] = s.load_entropy[size_t(l * G + g)];
      gj["aux"] = s.aux[size_t(l * G + g)];
      gj["preferred_tokens"] = pref;
      groups.push_back(gj);
    }
    layers.push_back({{"layer", l}, {"groups", groups}});
  }
  j["per_layer"] = layers;
  std::vector<std::vector<double>> ag(static_cast<size_t>(L), std::vector<double>(static_cast<size_t>(L))), ch = ag;
  for (int64_t a = 0; a < L; ++a)
    for (int64_t b = 0; b < L; ++b) {
      for (int64_t g = 0; g < G; ++g) {
        ag[size_t(a)][size_t(b)] += s.agreement[size_t((a * L + b) * G + g)] / double(G);
        ch[size_t(a)][size_t(b)] += s.chance[size_t((a * L + b) * G + g)] / double(G);
      }
    }
  j["top1_agreement"] = ag;
  j["top1_agreement_chance"] = ch;
  return j;
}

bool plot_routing_heatmap(const RouteStats& s, const std::string& png_path, const std::string& title, PlotNeed need) {
  const int64_t L = s.layers, G = s.groups, M = s.experts;
  const std::string tmp = png_path + ".tmp." + std::to_string(::getpid());
  const std::string data = tmp + ".dat", script = tmp + ".gp";
  {
    std::ofstream d(data);
    for (int64_t l = 0; l < L; ++l)
      for (int64_t gm = 0; gm < G * M; ++gm) d << gm << " " << l << " " << s.load[size_t(l * G * M + gm)] << "\n";
    if (!d) throw Error(data + ": cannot write");
  }
  std::string esc_title;
  for (char c : title) esc_title += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  {
    std::ofstream g(script);
    const int64_t w = std::max<int64_t>(640, 60 * G * M + 200), h = std::max<int64_t>(400, 40 * L + 160);
    g << "set terminal pngcairo size " << w << "," << h << " font 'sans,10'\n"
      << "set output '" << tmp << "'\n"
      << "set title \"" << esc_title << "\"\n"
      << "set xlabel 'group / expert'\nset ylabel 'layer'\n"
      << "set xrange [-0.5:" << G * M - 0.5 << "]\nset yrange [" << L - 0.5 << ":-0.5]\n"
      << "set cbrange [0:1]\nset cblabel 'load share within group (balanced " << fixed(1.0 / double(M), 2) << ")'\n"
      << "set palette defined (0 'white', 1 '#f4a261', 2 '#9d0208')\n"
      << "set ytics 1\nset xtics (";
    for (int64_t gm = 0; gm < G * M; ++gm)
      g << (gm ? ", " : "") << "'g" << gm / M << "/e" << gm % M << "' " << gm;
    g << ") rotate by 45 right\n";
    for (int64_t gm = 1; gm < G; ++gm)
      g << "set arrow from " << gm * M - 0.5 << "," << -0.5 << " to " << gm * M - 0.5 << "," << L - 0.5
        << " nohead lc rgb 'black' lw 1 front\n";
    const bool labels = L * G * M <= 400;
    g << "plot '" << data << "' using 1:2:3 with image notitle"
      << (labels ? ", '' using 1:2:(sprintf('%.2f',$3)) with labels font 'sans,8' notitle" : "") << "\n";
  }
  bool drawn = false;
  try {
    drawn = run_gnuplot(script, need);
  } catch (const Error&) {
    for (const std::string& f : {data, script, tmp}) std::remove(f.c_str());
    throw;
  }
  for (const std::string& f : {data, script}) std::remove(f.c_str());
  if (!drawn) {
    std::remove(tmp.c_str());
    return false;
  }
  if (std::rename(tmp.c_str(), png_path.c_str()) != 0) throw Error(png_path + ": cannot move the plot into place");
  return true;
}

}  // namespace gqe::eval
