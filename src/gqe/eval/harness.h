// Runs a multiple-choice task end to end: requests -> tokens -> batched loglikelihoods -> acc/acc_norm,
// and renders the results as lm-evaluation-harness does (markdown table, results JSON).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "gqe/tokenizers/tokenizer.h"
#include "gqe/eval/metrics.h"
#include "gqe/eval/scoring.h"
#include "gqe/eval/tasks.h"
#include "gqe/model/transformer.h"

namespace gqe::eval {

// The harness's --limit: an integer N keeps the first N docs; a value below 1.0 keeps
// ceil(fraction * docs). Returns the number of docs to keep (all when limit <= 0).
int64_t resolve_limit(double limit, int64_t n_docs);

// The docs --limit keeps: the first ones of the file, or, for a task made of subtasks (mmlu's subjects),
// the first ones of each subtask, as the harness limits each of a group's tasks.
std::vector<McDoc> limited_docs(const std::vector<McDoc>& docs, double limit);

struct TaskEvaluation {
  TaskResult result;                // for a group (mmlu): the size-weighted mean of its subtasks
  std::vector<TaskResult> subtasks;  // mmlu: one per subject ("mmlu_<subject>"), in file order
  std::vector<DocMetrics> docs;
  std::vector<Loglikelihood> lls;  // per request, in build_requests order
  int64_t original_docs = 0;       // docs in the file before --limit
  int64_t requests = 0, truncated = 0;
  int64_t tokens = 0;  // context + continuation tokens over all requests (the harness's per-request count)
  double seconds = 0;
};

struct EvalOptions {
  double limit = 0;          // see resolve_limit
  ScoreOptions score;
  // score_shared_contexts (each doc's context once; the same scores, fewer tokens through the model), or
  // score_loglikelihoods (one forward per request, as the harness does).
  bool shared_contexts = true;
  std::ostream* dump = nullptr;  // request JSON lines (context, continuation, gold, token counts, loglikelihood, is_greedy)
  std::function<void(int64_t, int64_t)> progress;
};

// Scores task.docs (after --limit) with `model`. An empty context is conditioned on tok.eos_id().
TaskEvaluation evaluate_task(LanguageModel& model, const Tokenizer& tok, const TaskData& task, const EvalOptions& opt);

// Harness-style markdown table: |Tasks|Version|Filter|n-shot|Metric| |Value| |Stderr|n|Chance| (acc_norm
// only where the harness reports it) plus an average row of acc over the tasks and of acc_norm over those
// that report it (the paper's Table 2 layout).
std::string results_table(const std::vector<TaskResult>& results);

struct RunInfo {
  std::string checkpoint, checkpoint_sha256, tokenizer;
  nlohmann::ordered_json model_config;
  int64_t num_parameters = 0, batch_size = 0, max_length = 0;
  double limit = 0;
};
// {"results": {task: {"alias", "acc,none", "acc_stderr,none", ...}}, "average", "versions", "n-shot",
//  "higher_is_better", "n-samples", "config", "model_config", "checkpoint_sha256", "gqe": {...}}
nlohmann::ordered_json results_json(const std::vector<TaskEvaluation>& evals, const std::vector<TaskData>& tasks,
                                    const RunInfo& run);

}  // namespace gqe::eval
