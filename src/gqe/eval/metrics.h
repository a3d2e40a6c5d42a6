// acc / acc_norm of multiple-choice docs and the harness's mean +- stderr (docs/eval.md, "What is
// computed, exactly").
// Torch-free.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gqe::eval {

// numpy.argmax: index of the first maximum; a NaN counts as the maximum (the first NaN wins).
int64_t argmax_first(const std::vector<double>& v);

struct DocScores {
  std::vector<double> lls;         // summed log-likelihood of " " + choice, per choice
  std::vector<double> char_lens;   // len(choice) in code points (the delimiter space not counted)
  int64_t gold = -1;
};

struct DocMetrics {
  int64_t pred = -1, pred_norm = -1;
  double acc = 0, acc_norm = 0;  // 1.0 or 0.0
};

// acc: argmax(lls) == gold; acc_norm: argmax(lls / char_lens) == gold.
DocMetrics score_doc(const DocScores& d);

struct MeanStderr {
  double mean = 0;
  std::optional<double> stderr_;  // absent for n < 2 (the harness prints "N/A")
  int64_t n = 0;
};

// mean and sample standard deviation (ddof = 1) / sqrt(n).
MeanStderr mean_stderr(const std::vector<double>& xs);

// The harness's stderr of a group's size-weighted mean from its parts' stderrs and sizes
// (lm_eval.api.metrics.pooled_sample_stderr): sqrt(sum((n_i - 1) * se_i^2 * n_i) / (N - k) / N).
double pooled_sample_stderr(const std::vector<double>& stderrs, const std::vector<int64_t>& sizes);

struct TaskResult {
  std::string task;
  std::string version = "1";  // as the harness's table prints it
  int64_t n = 0;              // docs scored
  int64_t full_size = 0;      // docs in the split
  bool has_acc_norm = true;   // the harness reports acc_norm for this task
  double chance = 0;          // expected acc of a uniform guess: mean over docs of 1 / choices
  MeanStderr acc, acc_norm;
};

TaskResult aggregate(const std::string& task, const std::string& version, int64_t full_size,
                     const std::vector<DocMetrics>& docs);

}  // namespace gqe::eval
