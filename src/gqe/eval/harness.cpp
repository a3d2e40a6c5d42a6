#include "gqe/eval/harness.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <map>
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

std::vector<McDoc> limited_docs(const std::vector<McDoc>& docs, double limit) {
  if (docs.empty() || docs[0].subtask.empty())
    return std::vector<McDoc>(docs.begin(), docs.begin() + resolve_limit(limit, int64_t(docs.size())));
  std::map<std::string, int64_t> size, kept;
  for (const auto& d : docs) ++size[d.subtask];
  std::vector<McDoc> out;
  for (const auto& d : docs)
    if (kept[d.subtask] < resolve_limit(limit, size[d.subtask])) {
      ++kept[d.subtask];
      out.push_back(d);
    }
  return out;
}

namespace {

// A group's result as the harness aggregates it (lm_eval.api.group, weight_by_size): the mean of the
// subtasks' means weighted by their sizes, and the pooled stderr.
TaskResult group_result(const TaskInfo& info, const std::vector<TaskResult>& parts) {
  TaskResult g;
  g.task = info.name;
  g.version = info.version;
  g.full_size = info.full_size;
  g.has_acc_norm = false;
  double weighted = 0, chance = 0;
  std::vector<double> stderrs;
  std::vector<int64_t> sizes;
  bool all_stderrs = true;
  for (const auto& p : parts) {
    weighted += p.acc.mean * double(p.n);
    chance += p.chance * double(p.n);
    g.n += p.n;
    sizes.push_back(p.n);
    if (p.acc.stderr_)
      stderrs.push_back(*p.acc.stderr_);
    else
      all_stderrs = false;
  }
  g.acc.n = g.n;
  g.acc.mean = g.n > 0 ? weighted / double(g.n) : 0;
  g.chance = g.n > 0 ? chance / double(g.n) : 0;
  if (all_stderrs && !parts.empty() && g.n > int64_t(parts.size())) g.acc.stderr_ = pooled_sample_stderr(stderrs, sizes);
  return g;
}

double chance_of(const std::vector<McDoc>& docs) {
  double c = 0;
  for (const auto& d : docs) c += 1.0 / double(d.choices.size());
  return docs.empty() ? 0 : c / double(docs.size());
}

}  // namespace

TaskEvaluation evaluate_task(LanguageModel& model, const Tokenizer& tok, const TaskData& task, const EvalOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  TaskEvaluation ev;
  ev.original_docs = int64_t(task.docs.size());
  const std::vector<McDoc> docs = limited_docs(task.docs, opt.limit);
  const std::vector<Request> reqs = build_requests(docs);
  std::vector<EncodedPair> enc;
  enc.reserve(reqs.size());
  for (const auto& r : reqs) {
    enc.push_back(encode_pair(tok, r.context, r.continuation, tok.eos_id()));
    ev.tokens += int64_t(enc.back().context.size() + enc.back().continuation.size());
  }
  ev.requests = int64_t(reqs.size());
  try {
    if (opt.shared_contexts) {
      std::vector<int64_t> group;
      for (const auto& r : reqs) group.push_back(r.doc);
      ev.lls = score_shared_contexts(model, enc, group, opt.score, opt.progress);
    } else {
      ev.lls = score_loglikelihoods(model, enc, opt.score, opt.progress);
    }
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
  if (!docs.empty() && !docs[0].subtask.empty()) {
    // Subtasks in file order; each doc belongs to one.
    std::vector<std::string> order;
    std::map<std::string, std::pair<std::vector<McDoc>, std::vector<DocMetrics>>> parts;
    for (size_t d = 0; d < docs.size(); ++d) {
      auto [it, fresh] = parts.try_emplace(docs[d].subtask);
      if (fresh) order.push_back(docs[d].subtask);
      it->second.first.push_back(docs[d]);
      it->second.second.push_back(ev.docs[d]);
    }
    for (const auto& name : order) {
      const auto& [pdocs, pmetrics] = parts[name];
      TaskResult r = aggregate(task.info.name + "_" + name, "1", 0, pmetrics);
      r.has_acc_norm = task.info.acc_norm;
      r.chance = chance_of(pdocs);
      ev.subtasks.push_back(r);
    }
    ev.result = group_result(task.info, ev.subtasks);
  } else {
    ev.result = aggregate(task.info.name, task.info.version, task.info.full_size, ev.docs);
    ev.result.has_acc_norm = task.info.acc_norm;
    ev.result.chance = chance_of(docs);
  }
  ev.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ev;
}

namespace {

std::string f4(double x) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(4) << x;
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
  std::vector<std::vector<std::string>> rows = {
      {"Tasks", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr", "n", "Chance"}};
  for (const auto& r : results) {
    bool first = true;
    std::vector<std::pair<std::string, MeanStderr>> metrics = {{"acc", r.acc}};
    if (r.has_acc_norm) metrics.push_back({"acc_norm", r.acc_norm});
    for (const auto& [name, m] : metrics) {
      rows.push_back({first ? r.task : "", first ? r.version : "", "none", "0", name, "↑", f4(m.mean), "±",
                      m.stderr_ ? f4(*m.stderr_) : "N/A", first ? std::to_string(r.n) : "", first ? f4(r.chance) : ""});
      first = false;
    }
  }
  std::string out = table(rows, {false, true, false, true, false, false, true, false, true, true, true});
  if (results.size() > 1) {
    double a = 0, an = 0;
    int64_t n_norm = 0;
    for (const auto& r : results) {
      a += r.acc.mean;
      if (r.has_acc_norm) {
        an += r.acc_norm.mean;
        ++n_norm;
      }
    }
    const std::string norm_head = n_norm == int64_t(results.size()) ? "acc_norm" : "acc_norm (" + std::to_string(n_norm) + " tasks)";
    std::vector<std::vector<std::string>> avg = {{"Average of " + std::to_string(results.size()) + " tasks", "acc", norm_head},
                                                 {"", f4(a / double(results.size())), n_norm > 0 ? f4(an / double(n_norm)) : "N/A"}};
    out += "\n" + table(avg, {false, true, true});
  }
  return out;
}

nlohmann::ordered_json results_json(const std::vector<TaskEvaluation>& evals, const std::vector<TaskData>& tasks,
                                    const RunInfo& run) {
  using J = nlohmann::ordered_json;
  J j, results = J::object(), groups = J::object(), versions = J::object(), nshot = J::object(), hib = J::object(),
       nsamples = J::object(), configs = J::object(), extra = J::object();
  // As the harness writes a version: a number where it is one ("1" -> 1.0), else the text ("Yaml").
  auto version_json = [](const std::string& v) {
    return v.find_first_not_of("0123456789.") == std::string::npos && !v.empty() ? J(std::stod(v)) : J(v);
  };
  auto entry = [](const TaskResult& r, const std::string& alias) {
    J t;
    t["alias"] = alias;
    t["acc,none"] = r.acc.mean;
    t["acc_stderr,none"] = r.acc.stderr_ ? J(*r.acc.stderr_) : J("N/A");
    if (r.has_acc_norm) {
      t["acc_norm,none"] = r.acc_norm.mean;
      t["acc_norm_stderr,none"] = r.acc_norm.stderr_ ? J(*r.acc_norm.stderr_) : J("N/A");
    }
    t["chance"] = r.chance;
    return t;
  };
  double a = 0, an = 0;
  int64_t n_norm = 0;
  for (size_t i = 0; i < evals.size(); ++i) {
    const TaskResult& r = evals[i].result;
    const TaskInfo& info = tasks[i].info;
    results[r.task] = entry(r, r.task);
    for (const auto& sub : evals[i].subtasks) {
      results[sub.task] = entry(sub, " - " + sub.task.substr(r.task.size() + 1));
      versions[sub.task] = 1.0;
      nshot[sub.task] = 0;
      hib[sub.task] = {{"acc", true}};
      nsamples[sub.task] = {{"original", sub.n}, {"effective", sub.n}};
    }
    if (!evals[i].subtasks.empty()) {
      J subs = J::array();
      for (const auto& sub : evals[i].subtasks) subs.push_back(sub.task);
      groups[r.task] = {{"acc,none", r.acc.mean},
                        {"acc_stderr,none", r.acc.stderr_ ? J(*r.acc.stderr_) : J("N/A")},
                        {"alias", r.task},
                        {"aggregation", "mean of the subtasks weighted by size, pooled stderr"},
                        {"subtasks", subs}};
    }
    versions[r.task] = version_json(r.version);
    nshot[r.task] = 0;
    hib[r.task] = r.has_acc_norm ? J{{"acc", true}, {"acc_norm", true}} : J{{"acc", true}};
    nsamples[r.task] = {{"original", evals[i].original_docs}, {"effective", r.n}};
    J metrics = r.has_acc_norm ? J{"acc", "acc_norm"} : J{"acc"};
    configs[r.task] = {{"task", r.task},
                       {"data_file", tasks[i].source},
                       {"split", info.split},
                       {"split_size", info.full_size},
                       {"doc_to_text", info.doc_to_text},
                       {"target_delimiter", " "},
                       {"num_fewshot", 0},
                       {"output_type", "multiple_choice"},
                       {"metric_list", metrics}};
    if (!info.note.empty()) configs[r.task]["note"] = info.note;
    extra[r.task] = {{"requests", evals[i].requests},
                     {"truncated_requests", evals[i].truncated},
                     {"tokens", evals[i].tokens},
                     {"seconds", evals[i].seconds},
                     {"docs_per_second", evals[i].seconds > 0 ? double(r.n) / evals[i].seconds : 0.0},
                     {"tokens_per_second", evals[i].seconds > 0 ? double(evals[i].tokens) / evals[i].seconds : 0.0}};
    a += r.acc.mean;
    if (r.has_acc_norm) {
      an += r.acc_norm.mean;
      ++n_norm;
    }
  }
  j["results"] = results;
  if (!groups.empty()) j["groups"] = groups;
  if (!evals.empty()) {
    J tl = J::array(), tn = J::array();
    for (const auto& e : evals) {
      tl.push_back(e.result.task);
      if (e.result.has_acc_norm) tn.push_back(e.result.task);
    }
    j["average"] = {{"tasks", tl}, {"acc", a / double(evals.size())}, {"acc_norm_tasks", tn},
                    {"acc_norm", n_norm > 0 ? J(an / double(n_norm)) : J(nullptr)}};
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
