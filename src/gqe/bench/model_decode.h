// `gqe bench --decode-models`: whole-model decode of given model configs (random weights, fp32, saved and
// loaded back as `gqe generate` loads a checkpoint), batch B, greedy, against the memory limit: each step reads every weight it uses once, so tokens/s can reach at
// most (read bandwidth / bytes read per step) x B. A benchmark, not a test.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "gqe/core/config.h"

namespace gqe::bench {

struct ModelDecodeOptions {
  std::vector<std::string> configs;     // model config files (configs/*.json)
  std::vector<int64_t> batches = {1};   // sequences decoded together
  int64_t context = 16;                 // prompt tokens per sequence before the timed steps
  int tokens = 32;                      // timed decode steps per run
  int repeats = 5;                      // timed runs per point (after one warm-up), the models in turn
  double read_bandwidth_gbs = 0;        // the limit's yardstick (measure_read_bandwidth_gbs); 0: no limit
  int threads = 1;                      // threads in use, for the load warning
};

struct ModelDecodeRow {
  std::string model;  // the config file's name without .json
  std::string kind;   // gqa | gqe
  int64_t batch = 1, context = 0;
  double tok_s = 0, min_tok_s = 0, max_tok_s = 0;  // tokens of all sequences per second: median, spread
  double weight_mb = 0;     // weight bytes a step reads (MB, 1e6)
  double limit_tok_s = 0;   // read bandwidth / weight bytes x batch (0 without a bandwidth)
  double load_before = -1;  // 1-minute load average before the point
};

// Bytes of weights one decode step of `batch` sequences reads: every parameter, except an untied
// embedding (a row per token) and, in GQE, the query experts no token selected (at most batch x top_k of
// each group's M are read).
double decode_weight_bytes(const ModelConfig& cfg, int64_t batch);

std::vector<ModelDecodeRow> run_model_decode(const ModelDecodeOptions& opt, std::ostream* log);
// The rows as a table; no rows: its header.
std::string model_decode_table(const std::vector<ModelDecodeRow>& rows, double read_bandwidth_gbs);
nlohmann::json model_decode_json(const std::vector<ModelDecodeRow>& rows);

}  // namespace gqe::bench
