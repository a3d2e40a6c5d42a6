#include "gqe/eval/harness.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <sstream>

#include "gqe/core/error.h"
#include "gqe/eval/requests.h"
#include "gqe/eval/text.h"

namespace gqe::eval {

int64_t resolve_limit(double limit, int64_t n_docs) {
  if (limit <= 0) return n_docs;
  const int64_t n = limit < 1.0 ? int64_t(std::ceil(double(n_docs) * limit)) : int64_t(limit);
  return std::min(n, n_docs);
}

TaskEvaluation evaluate_task(LanguageModel& model, const Tokenizer& tok, const TaskData& task, const EvalOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  TaskEvaluation ev;
  ev.original_docs = int64_t(task.docs.size());
  const std::vector<McDoc> docs(task.docs.begin(), task.docs.begin() + resolve_limit(opt.limit, ev.original_docs));
  const std::vector<Request> reqs = build_requests(docs);
  std::vector<EncodedPair> enc;
  enc.reserve(reqs.size());
  for (const auto& r : reqs) {
    enc.push_back(encode_pair(tok, r.context, r.continuation, tok.eos_id()));
  }
  ev.requests = int64_t(reqs.size());
  try {
    ev.lls = score_loglikelihoods(model, enc, opt.score, opt.progress);
  } catch (const RequestError& e) {
    const Request& r = reqs[e.request];
    const McDoc& d = docs[size_t(r.doc)];
    throw Error(task.info.name + ": " + task.source + ":" + std::to_string(d.line) + ": doc " + d.id + ", choice " +
                std::to_string(r.choice) + ": " + e.what());
  }
  if (opt.dump)
    for (size_t i = 0; i < reqs.size(); ++i) {
      const RequestScore score{ev.lls[i].logprob, ev.lls[i].greedy};
      *opt.dump << request_json(task.info.name, docs[size_t(reqs[i].doc)], reqs[i], enc[i], &score) << "\n";
    }
  std::vector<DocScores> scores(docs.size());
  for (size_t d = 0; d < docs.size(); ++d) {
    scores[d].gold = docs[d].gold;
    for (const auto& c : docs[d].choices) scores[d].char_lens.push_back(double(py_len(c)));
    scores[d].lls.resize(docs[d].choices.size());
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    scores[size_t(reqs[i].doc)].lls[size_t(reqs[i].choice)] = ev.lls[i].logprob;
    if (ev.lls[i].truncated) ++ev.truncated;
  }
  for (const auto& s : scores) ev.docs.push_back(score_doc(s));
  ev.result = aggregate(task.info.name, task.info.version, task.info.full_size, ev.docs);
  ev.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ev;
}

namespace {

std::string f4(double x) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(4) << x;
  return o.str();
}

std::string version_str(double v) {
  std::ostringstream o;
  o << v;  // 1.0 prints as "1", as the harness's table shows it
  return o.str();
}

std::string table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
  // Like pytablewriter's markdown (the harness's make_table): columns at least 3 wide, headers centred.
  std::vector<size_t> w(rows[0].size(), 3);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], size_t(py_len(r[c])));
  std::ostringstream o;
  auto cell = [&](const std::string& s, size_t c) {
    const std::string pad(w[c] - size_t(py_len(s)), ' ');
    return right[c] ? pad + s : s + pad;
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    o << "|";
    for (size_t c = 0; c < rows[i].size(); ++c) {
      if (i == 0) {
        const size_t extra = w[c] - size_t(py_len(rows[i][c]));
        o << std::string(extra / 2, ' ') << rows[i][c] << std::string(extra - extra / 2, ' ') << "|";
      } else {
        o << cell(rows[i][c], c) << "|";
      }
    }
    o << "\n";
    if (i == 0) {
      o << "|";
      for (size_t c = 0; c < w.size(); ++c) o << std::string(w[c] - (right[c] ? 1 : 0), '-') << (right[c] ? ":" : "") << "|";
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace

std::string results_table(const std::vector<TaskResult>& results) {
  std::vector<std::vector<std::string>> rows = {{"Tasks", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr", "n"}};
  for (const auto& r : results) {
    bool first = true;
    for (const auto& [name, m] : {std::pair<std::string, MeanStderr>{"acc", r.acc}, {"acc_norm", r.acc_norm}}) {
      rows.push_back({first ? r.task : "", first ? version_str(r.version) : "", "none", "0", name, "↑", f4(m.mean), "±",
                      m.stderr_ ? f4(*m.stderr_) : "N/A", first ? std::to_string(r.n) : ""});
      first = false;
    }
  }
  std::string out = table(rows, {false, true, false, true, false, false, true, false, true, true});
  if (results.size() > 1) {
    double a = 0, an = 0;
    for (const auto& r : results) {
      a += r.acc.mean;
      an += r.acc_norm.mean;
    }
    std::vector<std::vector<std::string>> avg = {{"Average of " + std::to_string(results.size()) + " tasks", "acc", "acc_norm"},
                                                 {"", f4(a / double(results.size())), f4(an / double(results.size()))}};
    out += "\n" + table(avg, {false, true, true});
  }
  return out;
}

nlohmann::ordered_json results_json(const std::vector<TaskEvaluation>& evals, const std::vector<TaskData>& tasks,
                                    const RunInfo& run) {
  using J = nlohmann::ordered_json;
  J j, results = J::object(), versions = J::object(), nshot = J::object(), hib = J::object(), nsamples = J::object(),
       configs = J::object(), extra = J::object();
  double a = 0, an = 0;
  for (size_t i = 0; i < evals.size(); ++i) {
    const TaskResult& r = evals[i].result;
    const TaskInfo& info = tasks[i].info;
    J t;
    t["alias"] = r.task;
    t["acc,none"] = r.acc.mean;
    t["acc_stderr,none"] = r.acc.stderr_ ? J(*r.acc.stderr_) : J("N/A");
    t["acc_norm,none"] = r.acc_norm.mean;
    t["acc_norm_stderr,none"] = r.acc_norm.stderr_ ? J(*r.acc_norm.stderr_) : J("N/A");
    results[r.task] = t;
    versions[r.task] = r.version;
    nshot[r.task] = 0;
    hib[r.task] = {{"acc", true}, {"acc_norm", true}};
    nsamples[r.task] = {{"original", evals[i].original_docs}, {"effective", r.n}};
    const bool hs = r.task == "hellaswag";
    configs[r.task] = {{"task", r.task},
                       {"data_file", tasks[i].source},
                       {"split", info.split},
                       {"split_size", info.full_size},
                       {"doc_to_text", hs ? "preprocess(activity_label + ': ' + ctx_a + ' ' + ctx_b.capitalize())"
                                          : std::string("Question: {{") + (r.task == "piqa" ? "goal" : "question") + "}}\\nAnswer:"},
                       {"target_delimiter", " "},
                       {"num_fewshot", 0},
                       {"output_type", "multiple_choice"},
                       {"metric_list", {"acc", "acc_norm"}}};
    extra[r.task] = {{"requests", evals[i].requests}, {"truncated_requests", evals[i].truncated}, {"seconds", evals[i].seconds}};
    a += r.acc.mean;
    an += r.acc_norm.mean;
  }
  j["results"] = results;
  if (!evals.empty()) {
    J tl = J::array();
    for (const auto& e : evals) tl.push_back(e.result.task);
    j["average"] = {{"tasks", tl}, {"acc", a / double(evals.size())}, {"acc_norm", an / double(evals.size())}};
  }
  j["configs"] = configs;
  j["versions"] = versions;
  j["n-shot"] = nshot;
  j["higher_is_better"] = hib;
  j["n-samples"] = nsamples;
  j["config"] = {{"model", "gqe"},
                 {"model_args", "checkpoint=" + run.checkpoint},
                 {"model_num_parameters", run.num_parameters},
                 {"batch_size", run.batch_size},
                 {"max_length", run.max_length},
                 {"limit", run.limit > 0 ? J(run.limit) : J(nullptr)},
                 {"tokenizer", run.tokenizer}};
  j["model_config"] = run.model_config;
  j["checkpoint_sha256"] = run.checkpoint_sha256;
  j["date"] = double(std::time(nullptr));
  j["gqe"] = extra;
  return j;
}

}  // namespace gqe::eval
