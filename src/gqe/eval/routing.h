// Routing analytics of a GQE checkpoint: what the routers do on real text. Per layer and group:
// expert load fractions, router entropy, load-balancing loss; how often a token's top-1 expert agrees
// across layers; the tokens each expert prefers; a PNG heat map of the loads (gnuplot).
//
// Read from GQEAttention::last_router_probs [B,T,G,M] and last_selected [B,T,G,k] after each forward.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gqe/core/gnuplot.h"
#include "gqe/tokenizers/tokenizer.h"
#include "gqe/model/transformer.h"

namespace gqe::eval {

struct PreferredToken {
  int64_t token = 0;
  double share = 0;   // fraction of this token's occurrences whose selection includes the expert
  int64_t count = 0;  // occurrences of the token routed to the expert
};

struct RouteStats {
  int64_t layers = 0, groups = 0, experts = 0, top_k = 0;  // L (GQE layers), G, M, k
  int64_t tokens = 0;                                      // routed token positions
  std::vector<double> load;          // [L,G,M] share of the group's k selections that went to expert m
  std::vector<double> mean_prob;     // [L,G,M] mean router probability
  std::vector<double> entropy;       // [L,G] mean per-token router entropy (nats)
  std::vector<double> load_entropy;  // [L,G] entropy of the load distribution (nats); log M = balanced
  std::vector<double> aux;           // [L,G] M * sum_m f[m] * P[m] over all tokens (1 = balanced top-1)
  std::vector<double> agreement;     // [L,L,G] fraction of tokens whose top-1 experts are equal in both layers
  std::vector<double> chance;        // [L,L,G] agreement expected from the two layers' top-1 loads alone
  std::vector<std::vector<PreferredToken>> preferred;  // [L*G*M] best first
  int64_t min_count = 0;             // tokens seen fewer times are not ranked
  std::vector<uint8_t> top1_choice;  // [N,L,G] each position's top-1 expert, in data order (keep_choices only)
};

struct RouteOptions {
  int64_t seq_len = 256;
  int64_t batch_size = 8;
  int64_t top_tokens = 8;   // preferred tokens listed per expert
  int64_t min_count = 5;    // a token must occur this often to be ranked (shares of rare tokens are noise)
  bool keep_choices = false;  // fill RouteStats::top1_choice (compare two checkpoints token by token)
};

// Throws gqe::Error when the model has no GQE layers.
RouteStats collect_routing(LanguageModel& model, const std::vector<int64_t>& tokens, const RouteOptions& opt,
                           const std::function<void(int64_t, int64_t)>& progress = {});

// A readable report (tables of load/entropy/aux, adjacent-layer agreement, preferred tokens).
std::string format_routing(const RouteStats& s, const Tokenizer& tok);
nlohmann::ordered_json routing_json(const RouteStats& s, const Tokenizer& tok);

// Heat map of load fractions (rows: layers, columns: group/expert) written to png_path with gnuplot;
// true when drawn. A missing gnuplot or a gnuplot error follows `need` (see core/gnuplot.h).
bool plot_routing_heatmap(const RouteStats& s, const std::string& png_path, const std::string& title, PlotNeed need);

// A token's text for display: printable ASCII kept, other bytes as \xNN, spaces as '␣'.
std::string printable_token(const Tokenizer& tok, int64_t token);

}  // namespace gqe::eval
