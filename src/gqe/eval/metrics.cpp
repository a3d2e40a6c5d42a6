#include "gqe/eval/metrics.h"

#include <cmath>

#include "gqe/core/error.h"

namespace gqe::eval {

int64_t argmax_first(const std::vector<double>& v) {
  if (v.empty()) throw Error("argmax of an empty list");
  int64_t best = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) return int64_t(i);
    if (v[i] > v[best]) best = int64_t(i);
  }
  return best;
}

DocMetrics score_doc(const DocScores& d) {
  if (d.lls.size() != d.char_lens.size()) throw Error("score_doc: lls and char_lens differ in length");
  DocMetrics m;
  m.pred = argmax_first(d.lls);
  std::vector<double> norm(d.lls.size());
  for (size_t i = 0; i < norm.size(); ++i) norm[i] = d.lls[i] / d.char_lens[i];
  m.pred_norm = argmax_first(norm);
  m.acc = m.pred == d.gold ? 1.0 : 0.0;
  m.acc_norm = m.pred_norm == d.gold ? 1.0 : 0.0;
  return m;
}

MeanStderr mean_stderr(const std::vector<double>& xs) {
  MeanStderr r;
  r.n = int64_t(xs.size());
  if (xs.empty()) return r;
  double s = 0;
  for (double x : xs) s += x;
  r.mean = s / double(xs.size());
  if (xs.size() >= 2) {
    double ss = 0;
    for (double x : xs) ss += (x - r.mean) * (x - r.mean);
    r.stderr_ = std::sqrt(ss / double(xs.size() - 1)) / std::sqrt(double(xs.size()));
  }
  return r;
}

double pooled_sample_stderr(const std::vector<double>& stderrs, const std::vector<int64_t>& sizes) {
  if (stderrs.size() != sizes.size() || stderrs.empty()) throw Error("pooled_sample_stderr: stderrs and sizes differ in length");
  double var = 0;
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    var += double(sizes[i] - 1) * stderrs[i] * stderrs[i] * double(sizes[i]);
    total += sizes[i];
  }
  var /= double(total - int64_t(sizes.size()));
  return std::sqrt(var / double(total));
}

TaskResult aggregate(const std::string& task, const std::string& version, int64_t full_size,
                     const std::vector<DocMetrics>& docs) {
  TaskResult t;
  t.task = task;
  t.version = version;
  t.full_size = full_size;
  t.n = int64_t(docs.size());
  std::vector<double> a, an;
  for (const auto& d : docs) {
    a.push_back(d.acc);
    an.push_back(d.acc_norm);
  }
  t.acc = mean_stderr(a);
  t.acc_norm = mean_stderr(an);
  return t;
}

}  // namespace gqe::eval
