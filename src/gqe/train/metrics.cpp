#include "gqe/train/metrics.h"

#include <cstdio>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"

namespace gqe {

void accumulate_router_counts(const LanguageModel& model, at::Tensor& counts) {
  const auto layers = model.gqe_layers();
  if (layers.empty()) return;
  const auto& a = model.config().attention;
  const int64_t L = int64_t(layers.size()), G = a.num_kv_heads, M = a.experts_per_group();
  // host: counts are summed over steps and read with data_ptr; the selections are copied here.
  if (!counts.defined()) counts = at::zeros({L, G, M}, at::kDouble);
  for (int64_t l = 0; l < L; ++l) {
    const at::Tensor& sel = layers[size_t(l)]->last_selected;  // [B, T, G, k] expert index within the group
    if (!sel.defined()) continue;
    at::Tensor flat =  // host: beside the copied selections
        (sel.to(at::kCPU).to(at::kLong) + at::arange(G, at::kLong).view({1, 1, G, 1}) * M).reshape({-1});
    counts[l].view({-1}).add_(at::bincount(flat, {}, G * M).to(at::kDouble));
  }
}

nlohmann::json router_load_json(const at::Tensor& counts) {
  nlohmann::json out = nlohmann::json::array();
  if (!counts.defined()) return out;
  at::Tensor c = counts.to(at::kDouble).contiguous();
  const int64_t L = c.size(0), G = c.size(1), M = c.size(2);
  const double* p = c.data_ptr<double>();
  for (int64_t l = 0; l < L; ++l) {
    nlohmann::json layer = nlohmann::json::array();
    for (int64_t g = 0; g < G; ++g) {
      double total = 0;
      for (int64_t m = 0; m < M; ++m) total += p[(l * G + g) * M + m];
      nlohmann::json grp = nlohmann::json::array();
      for (int64_t m = 0; m < M; ++m) {
        const double f = total > 0 ? p[(l * G + g) * M + m] / total : 0.0;
        grp.push_back(double(std::llround(f * 1e4)) / 1e4);  // 4 digits keep the log small
      }
      layer.push_back(grp);
    }
    out.push_back(layer);
  }
  return out;
}

MetricsRepair MetricsLog::open(const std::string& path, std::optional<int64_t> resumed_step) {
  path_ = path;
  MetricsRepair repair;
  if (resumed_step && fs::exists(path)) {
    const std::string text = fs::read_file(path);
    std::string kept;
    int64_t line_no = 0;
    for (size_t pos = 0; pos < text.size();) {
      const size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) {  // every record ends with a newline: this one was cut short
        repair.torn_last_line = true;
        break;
      }
      const std::string line = text.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      if (line.empty()) continue;
      const std::string where = path + ": line " + std::to_string(line_no);
      const nlohmann::json j = parse_json(line, where);
      // is_number_unsigned: an integer >= 0 written as one (nlohmann stores those unsigned).
      if (!j.is_object() || !j.contains("step") || !j["step"].is_number_unsigned() ||
          j["step"].get<uint64_t>() > uint64_t(INT64_MAX))
        throw FormatError(where + ": expected a record with an integer \"step\" >= 0 (a damaged log: move it aside to resume)");
      if (j["step"].get<int64_t>() > *resumed_step) {
        ++repair.dropped_records;
        continue;
      }
      kept += line + '\n';
    }
    if (repair.torn_last_line || repair.dropped_records > 0) fs::write_file_atomic(path, kept);
  }
  f_.open(path, resumed_step ? std::ios::app : std::ios::trunc);
  if (!f_) throw Error(path + ": cannot open the metrics log for writing");
  return repair;
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!f_.is_open()) return;
  // Non-finite numbers (a skipped NaN step) are written as null: JSON has no NaN.
  f_ << record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  f_.flush();
  if (!f_) throw Error(path_ + ": write failed");
}

std::string format_duration(double s) {
  char buf[32];
  if (!(s >= 0) || s > 1e9) return "?";
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%.0fs", s);
  return buf;
}

}  // namespace gqe
