// Training metrics: the JSON-lines log (one object per step, plus validation records), router-load
// accounting for GQE layers, and the human progress line.
//
// metrics.jsonl records:
//   {"type":"train","step":S,"loss":..,"aux_loss":..,"lr":..,"grad_norm":..,"clip_to":..,"clipped":bool,
//    "skipped":bool,"skip_reason":"","tokens":tokens so far,"tokens_per_s":..,"elapsed_s":..,
//    "router_load":[[[fraction of the group's picks per expert m] per group g] per GQE layer]}
//   {"type":"val","step":S,"val_loss":..,"val_ppl":..}
// "step" counts optimizer steps taken (1-based: the record after the first update has step 1).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "gqe/model/transformer.h"

namespace gqe {

// Adds the picks of every GQE layer's last forward (GQEAttention::last_selected, [B,T,G,k]) into
// `counts` ([L, G, M] double; created on first use). No-op for GQA models.
void accumulate_router_counts(const LanguageModel& model, at::Tensor& counts);
// counts [L, G, M] -> per-group fractions as nested JSON arrays (each group sums to 1).
nlohmann::json router_load_json(const at::Tensor& counts);

// What opening a resumed run's log repaired.
struct MetricsRepair {
  bool torn_last_line = false;   // a record cut short by a kill during a write, dropped
  int64_t dropped_records = 0;   // records past the resumed step (they are computed again)
};

class MetricsLog {
 public:
  MetricsLog() = default;
  // Without `resumed_step`, starts a new file (a new run). With it, continues the log of a run resumed at
  // that step: a torn last line and every record past the step are dropped first (an atomic rewrite),
  // so the log never holds a broken line or a step twice. Any other damaged line is a gqe::FormatError
  // naming it.
  MetricsRepair open(const std::string& path, std::optional<int64_t> resumed_step);
  bool is_open() const { return f_.is_open(); }
  void write(const nlohmann::json& record);

 private:
  std::ofstream f_;
  std::string path_;
};

std::string format_duration(double seconds);  // "42s", "3m07s", "2h05m"

}  // namespace gqe
