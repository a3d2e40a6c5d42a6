#include "gqe/train/zclip.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "gqe/core/error.h"
#include "gqe/core/json.h"

namespace gqe {

ZClipDecision ZClip::observe(double norm) {
  ZClipDecision d;
  d.norm = norm;
  d.target = norm;
  if (o_.enabled) {
    if (!initialized_) {
      warmup_.push_back(norm);
      if (int64_t(warmup_.size()) >= std::max<int64_t>(1, o_.warmup_steps)) {
        double m = 0;
        for (double x : warmup_) m += x;
        m /= double(warmup_.size());
        double v = 0;
        for (double x : warmup_) v += (x - m) * (x - m);
        mean_ = m;
        var_ = v / double(warmup_.size());
        initialized_ = true;
        warmup_.clear();
      }
    } else {
      const double sd = std::sqrt(var_);
      d.z = (norm - mean_) / (sd + o_.eps);
      if (d.z > o_.z_threshold) d.target = mean_ + o_.z_threshold * o_.z_threshold * sd / d.z;
      mean_ = o_.alpha * mean_ + (1 - o_.alpha) * d.target;
      var_ = o_.alpha * var_ + (1 - o_.alpha) * (d.target - mean_) * (d.target - mean_);
    }
  }
  if (o_.max_norm > 0) d.target = std::min(d.target, o_.max_norm);
  d.clipped = d.target < norm;
  return d;
}

nlohmann::json ZClip::state() const {
  return {{"initialized", initialized_}, {"mean", mean_}, {"var", var_}, {"warmup_norms", warmup_}};
}

void ZClip::load_state(const nlohmann::json& j, const std::string& source) {
  // Everything checked before anything is assigned: a refused state leaves this ZClip as it was.
  const double mean = json_number(j, "mean", source, "zclip."), var = json_number(j, "var", source, "zclip.");
  if (!j.contains("initialized") || !j.at("initialized").is_boolean())
    throw_field_error(source, "zclip.initialized", "expected true or false");
  std::vector<double> norms;
  if (!j.contains("warmup_norms") || !j.at("warmup_norms").is_array())
    throw_field_error(source, "zclip.warmup_norms", "expected an array of numbers");
  for (const auto& n : j.at("warmup_norms")) {
    if (!n.is_number()) throw_field_error(source, "zclip.warmup_norms", "expected an array of numbers");
    norms.push_back(n.get<double>());
  }
  mean_ = mean, var_ = var, initialized_ = j.at("initialized").get<bool>(), warmup_ = std::move(norms);
}

}  // namespace gqe
