#include "gqe/eval/tasks.h"

#include <map>
#include <nlohmann/json.hpp>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"
#include "gqe/core/sha256.h"
#include "gqe/eval/text.h"

namespace gqe::eval {

using nlohmann::json;

namespace {

// Task files from Windows tools may start with a UTF-8 byte-order mark; it is not part of the first line.
std::string read_without_bom(const std::string& path) {
  std::string s = fs::read_file(path);
  if (s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);
  return s;
}

struct Line {
  int64_t number;  // 1-based
  std::string text;
};

// Splits into lines (LF or CRLF). Whitespace-only lines are dropped; `gap` reports whether one appeared
// before the last non-blank line (that would misalign PIQA's labels).
std::vector<Line> read_lines(const std::string& path, bool* gap = nullptr) {
  const std::string s = read_without_bom(path);
  std::vector<Line> out;
  int64_t n = 0, last_blank = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find('\n', i);
    if (j == std::string::npos) j = s.size();
    std::string line = s.substr(i, j - i);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ++n;
    if (line.find_first_not_of(" \t") == std::string::npos) {
      last_blank = n;
    } else {
      out.push_back({n, std::move(line)});
    }
    i = j + 1;
  }
  if (gap) *gap = last_blank > 0 && !out.empty() && last_blank < out.back().number;
  return out;
}

std::string where(const std::string& path, int64_t line) { return path + ":" + std::to_string(line); }

json parse_row(const std::string& path, const Line& l) {
  // parse_json keeps the message short (a broken 64 MiB line is not echoed back) and names a NUL byte.
  const json row = parse_json(l.text, where(path, l.number));
  if (!row.is_object()) throw FormatError(where(path, l.number) + ": expected a JSON object per line, got " + std::string(row.type_name()));
  return row;
}

std::string short_value(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

const json& field(const json& obj, const std::string& name, const std::string& at, const std::string& prefix = "") {
  auto it = obj.find(name);
  if (it == obj.end()) throw FormatError(at + ": missing field '" + prefix + name + "'");
  return *it;
}

std::string string_field(const json& obj, const std::string& name, const std::string& at, const std::string& prefix = "") {
  const json& v = field(obj, name, at, prefix);
  if (!v.is_string())
    throw FormatError(at + ": field '" + prefix + name + "': expected a string, got " + short_value(v));
  return v.get<std::string>();
}

std::vector<std::string> string_list(const json& obj, const std::string& name, const std::string& at,
                                     const std::string& prefix = "") {
  const json& v = field(obj, name, at, prefix);
  if (!v.is_array()) throw FormatError(at + ": field '" + prefix + name + "': expected a list of strings, got " + short_value(v));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      throw FormatError(at + ": field '" + prefix + name + "[" + std::to_string(i) + "]': expected a string, got " +
                        short_value(v[i]));
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

std::string id_of(const json& row, const char* name, int64_t line) {
  auto it = row.find(name);
  if (it == row.end()) return "line " + std::to_string(line);
  return truncate_for_message(it->is_string() ? it->get<std::string>() : it->dump(), 60);
}

// The test splits carry no answers: label "" or -1 (a number or a string) in the Hugging Face layouts.
// Returns how the label reads ("empty", "-1"), or "" for a labelled row.
std::string unlabelled(const json& v) {
  if (v.is_number_integer() && v.get<int64_t>() == -1) return "-1";
  if (v.is_string()) {
    const std::string s = py_strip(v.get<std::string>());
    if (s.empty()) return "empty";
    if (s == "-1") return "-1";
  }
  return "";
}

// An integer label given as a JSON integer or an all-digit string (the HF layout stores strings).
// Unlabelled rows (unlabelled() above) are refused before.
int64_t int_label(const json& v, const std::string& name, const std::string& at) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string s = py_strip(v.get<std::string>());
    if (!s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos) return std::stoll(s);
  }
  throw FormatError(at + ": field '" + name + "': expected an integer label, got " + short_value(v));
}

void check_gold(const McDoc& d, const std::string& at, const std::string& name) {
  if (d.gold < 0 || d.gold >= int64_t(d.choices.size()))
    throw FormatError(at + ": field '" + name + "': label " + std::to_string(d.gold) + " is out of range for " +
                      std::to_string(d.choices.size()) + " choices");
}

void no_docs(const std::string& path, const std::vector<McDoc>& docs) {
  if (docs.empty()) throw FormatError(path + ": no examples (empty file)");
}

}  // namespace

const std::vector<TaskInfo>& known_tasks() {
  // name, version, split, size, file under --data-dir, acc_norm, doc_to_text, note: lm-eval 0.4.13's task
  // YAMLs (metadata.version, metric_list) and the split each scores.
  static const std::vector<TaskInfo> tasks = {
      {"hellaswag", "1", "validation", 10042, "hellaswag_val.jsonl", true,
       "preprocess(activity_label + ': ' + ctx_a + ' ' + ctx_b.capitalize())", ""},
      {"arc_easy", "1", "test", 2376, "ARC-Easy-Test.jsonl", true, "Question: {{question}}\nAnswer:", ""},
      {"arc_challenge", "1", "test", 1172, "ARC-Challenge-Test.jsonl", true, "Question: {{question}}\nAnswer:", ""},
      {"piqa", "1", "validation", 1838, "valid.jsonl + valid-labels.lst", true, "Question: {{goal}}\nAnswer:", ""},
      {"winogrande", "1", "validation", 1267, "winogrande/validation.jsonl", false,
       "partial scoring: sentence[:idx('_')] + option1|option2, continuation sentence[idx+1:].strip()", ""},
      {"sciq", "1", "validation", 1000, "sciq/validation.jsonl", true,
       "{{support.lstrip()}}\nQuestion: {{question}}\nAnswer:",
       "lm-eval scores SciQ's test split; its validation split (1,000 items, the one installed) is scored here"},
      {"openbookqa", "1", "test", 500, "openbookqa/test.jsonl", true, "question_stem", ""},
      {"boolq", "2", "validation", 3270, "boolq/validation.jsonl", false, "{{passage}}\nQuestion: {{question}}?\nAnswer:", ""},
      {"copa", "1", "validation", 100, "copa/validation.jsonl", false,
       "premise.strip()[:-1] + ' because' | ' therefore'", ""},
      {"commonsense_qa", "Yaml", "validation", 1221, "commonsense_qa/validation.jsonl", false,
       "Question: {{ question.strip() }}\nA. {{choices['text'][0]}}\n...\nE. {{choices['text'][4]}}\nAnswer:", ""},
      {"social_iqa", "0", "validation", 1954, "social_iqa/validation.jsonl", false, "Q: {{context}} {{question}}\nA:", ""},
      {"mmlu", "2", "test", 14042, "mmlu/test.jsonl", false,
       "description + {{question.strip()}}\nA. {{choices[0]}}\n...\nD. {{choices[3]}}\nAnswer:", ""},
  };
  return tasks;
}

const TaskInfo& task_info(const std::string& name) {
  std::string known;
  for (const auto& t : known_tasks()) {
    if (t.name == name) return t;
    known += (known.empty() ? "" : ", ") + t.name;
  }
  throw Error("unknown task '" + name + "' (known: " + known + ")");
}

std::string hellaswag_context(const std::string& activity_label, const std::string& ctx_a, const std::string& ctx_b) {
  return hellaswag_preprocess(activity_label + ": " + ctx_a + " " + py_capitalize(ctx_b));
}

std::string question_answer_context(const std::string& question) { return "Question: " + question + "\nAnswer:"; }

std::vector<McDoc> load_hellaswag(const std::string& path) {
  std::vector<McDoc> docs;
  for (const Line& l : read_lines(path)) {
    const std::string at = where(path, l.number);
    const json row = parse_row(path, l);
    McDoc d;
    d.line = l.number;
    d.id = id_of(row, "ind", l.number);
    d.context = hellaswag_context(string_field(row, "activity_label", at), string_field(row, "ctx_a", at),
                                  string_field(row, "ctx_b", at));
    for (const auto& e : string_list(row, "endings", at)) d.choices.push_back(hellaswag_preprocess(e));
    if (d.choices.size() < 2)
      throw FormatError(at + ": field 'endings': expected at least 2 endings, got " + std::to_string(d.choices.size()));
    const json& label = field(row, "label", at);
    if (const std::string u = unlabelled(label); !u.empty())
      throw FormatError(at + ": field 'label' is " + u + ": this row is unlabelled (the test split); the harness "
                        "scores the validation split, hellaswag_val.jsonl");
    d.gold = int_label(label, "label", at);
    check_gold(d, at, "label");
    docs.push_back(std::move(d));
  }
  no_docs(path, docs);
  return docs;
}

std::vector<McDoc> load_arc(const std::string& path) {
  std::vector<McDoc> docs;
  for (const Line& l : read_lines(path)) {
    const std::string at = where(path, l.number);
    const json row = parse_row(path, l);
    McDoc d;
    d.line = l.number;
    d.id = id_of(row, "id", l.number);
    std::vector<std::string> labels;
    const json& q = field(row, "question", at);
    if (q.is_object()) {
      // Original release: {"question": {"stem": ..., "choices": [{"text": ..., "label": ...}]}, "answerKey": ...}
      d.context = question_answer_context(string_field(q, "stem", at, "question."));
      const json& cs = field(q, "choices", at, "question.");
      if (!cs.is_array()) throw FormatError(at + ": field 'question.choices': expected a list of {text, label}, got " + short_value(cs));
      for (size_t i = 0; i < cs.size(); ++i) {
        const std::string p = "question.choices[" + std::to_string(i) + "].";
        if (!cs[i].is_object()) throw FormatError(at + ": field '" + p.substr(0, p.size() - 1) + "': expected an object {text, label}");
        d.choices.push_back(string_field(cs[i], "text", at, p));
        labels.push_back(string_field(cs[i], "label", at, p));
      }
    } else if (q.is_string()) {
      // Hugging Face layout: {"question": str, "choices": {"text": [...], "label": [...]}, "answerKey": ...}
      d.context = question_answer_context(q.get<std::string>());
      const json& cs = field(row, "choices", at);
      if (!cs.is_object()) throw FormatError(at + ": field 'choices': expected {\"text\": [...], \"label\": [...]}, got " + short_value(cs));
      d.choices = string_list(cs, "text", at, "choices.");
      labels = string_list(cs, "label", at, "choices.");
      if (labels.size() != d.choices.size())
        throw FormatError(at + ": field 'choices': " + std::to_string(d.choices.size()) + " texts but " +
                          std::to_string(labels.size()) + " labels");
    } else {
      throw FormatError(at + ": field 'question': expected an object {stem, choices} or a string, got " + short_value(q));
    }
    if (d.choices.size() < 2) throw FormatError(at + ": expected at least 2 choices, got " + std::to_string(d.choices.size()));
    const std::string key = string_field(row, "answerKey", at);
    // The first label that matches, as the harness's choices.label.index(answerKey).
    for (size_t i = 0; i < labels.size() && d.gold < 0; ++i)
      if (labels[i] == key) d.gold = int64_t(i);
    if (d.gold < 0) {
      std::string ls;
      for (const auto& s : labels) ls += (ls.empty() ? "" : ",") + s;
      throw FormatError(at + ": field 'answerKey': '" + key + "' is not one of the choice labels [" + ls + "]");
    }
    docs.push_back(std::move(d));
  }
  no_docs(path, docs);
  return docs;
}

std::vector<McDoc> load_piqa(const std::string& jsonl_path, const std::string& labels_path) {
  bool gap = false;
  const std::vector<Line> rows = read_lines(jsonl_path, &gap);
  if (gap && !labels_path.empty())
    throw FormatError(jsonl_path + ": blank line before the last example; " + labels_path +
                      " is aligned line by line with it, so blank lines would misalign the labels");
  std::vector<Line> labels;
  if (!labels_path.empty()) {
    bool lgap = false;
    labels = read_lines(labels_path, &lgap);
    if (lgap) throw FormatError(labels_path + ": blank line before the last label; expected one label (0 or 1) per line");
    if (labels.size() != rows.size())
      throw FormatError(labels_path + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(rows.size()) +
                        " examples in " + jsonl_path + "; the files must be line-aligned (valid.jsonl with valid-labels.lst)");
  }
  std::vector<McDoc> docs;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Line& l = rows[i];
    const std::string at = where(jsonl_path, l.number);
    const json row = parse_row(jsonl_path, l);
    McDoc d;
    d.line = l.number;
    d.id = id_of(row, "id", l.number);
    d.context = question_answer_context(string_field(row, "goal", at));
    d.choices = {string_field(row, "sol1", at), string_field(row, "sol2", at)};
    if (!labels_path.empty()) {
      const std::string v = py_strip(labels[i].text);
      const std::string lat = where(labels_path, labels[i].number);
      if (v != "0" && v != "1") throw FormatError(lat + ": expected a label 0 or 1, got '" + labels[i].text + "'");
      d.gold = v == "1" ? 1 : 0;
    } else {
      auto it = row.find("label");
      if (it == row.end())
        throw FormatError(at + ": missing field 'label' and no labels file given (pass the line-aligned "
                               "valid-labels.lst with --labels)");
      if (const std::string u = unlabelled(*it); !u.empty())
        throw FormatError(at + ": field 'label' is " + u + ": this row is unlabelled (the test split); the harness "
                          "scores the validation split, valid.jsonl with valid-labels.lst");
      d.gold = int_label(*it, "label", at);
      check_gold(d, at, "label");
    }
    docs.push_back(std::move(d));
  }
  no_docs(jsonl_path, docs);
  return docs;
}

namespace {

// Reads one JSON object per line and renders each with `render(row, at, doc)`; ids come from `id_field`
// (the line number when absent).
template <class Render>
std::vector<McDoc> load_rows(const std::string& path, const char* id_field, const char* gold_field, Render render) {
  std::vector<McDoc> docs;
  for (const Line& l : read_lines(path)) {
    const std::string at = where(path, l.number);
    const json row = parse_row(path, l);
    McDoc d;
    d.line = l.number;
    d.id = id_of(row, id_field, l.number);
    render(row, at, d);
    check_gold(d, at, gold_field);
    docs.push_back(std::move(d));
  }
  no_docs(path, docs);
  return docs;
}

// A label the harness reads as an integer: a JSON integer or an all-digit string; unlabelled rows
// (the test splits) are named as such.
int64_t labelled_int(const json& row, const std::string& name, const std::string& at) {
  const json& v = field(row, name, at);
  if (const std::string u = unlabelled(v); !u.empty())
    throw FormatError(at + ": field '" + name + "' is " + u + ": this row is unlabelled (a test split without answers)");
  return int_label(v, name, at);
}

// The index of `key` in `labels` (Python's list.index), or a FormatError listing the labels.
int64_t index_of_label(const std::vector<std::string>& labels, const std::string& key, const std::string& at,
                       const std::string& name) {
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] == key) return int64_t(i);
  std::string ls;
  for (const auto& s : labels) ls += (ls.empty() ? "" : ",") + s;
  throw FormatError(at + ": field '" + name + "': '" + key + "' is not one of the choice labels [" + ls + "]");
}

// "\nA. t0\nB. t1..." for commonsense_qa and mmlu.
std::string lettered_choices(const std::vector<std::string>& texts) {
  std::string out;
  for (size_t i = 0; i < texts.size(); ++i) out += "\n" + std::string(1, char('A' + i)) + ". " + texts[i];
  return out;
}

std::vector<std::string> letters(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(std::string(1, char('A' + i)));
  return out;
}

std::vector<std::string> exact_list(const json& obj, const std::string& name, size_t n, const std::string& at,
                                    const std::string& prefix = "") {
  std::vector<std::string> v = string_list(obj, name, at, prefix);
  if (v.size() != n)
    throw FormatError(at + ": field '" + prefix + name + "': expected " + std::to_string(n) + " entries, got " +
                      std::to_string(v.size()));
  return v;
}

}  // namespace

std::vector<McDoc> load_winogrande(const std::string& path) {
  return load_rows(path, "id", "answer", [](const json& row, const std::string& at, McDoc& d) {
    const std::string sentence = string_field(row, "sentence", at);
    const size_t blank = sentence.find('_');
    if (blank == std::string::npos) throw FormatError(at + ": field 'sentence': no '_' blank to fill");
    // The harness slices at the '_' (ASCII, so byte and code point positions cut the same text).
    d.choices = {sentence.substr(0, blank) + string_field(row, "option1", at),
                 sentence.substr(0, blank) + string_field(row, "option2", at)};
    d.shared_continuation = py_strip(sentence.substr(blank + 1));
    const json& answer = field(row, "answer", at);
    if (!answer.is_string() || (answer != "1" && answer != "2"))
      throw FormatError(at + ": field 'answer': expected \"1\" or \"2\", got " + short_value(answer));
    d.gold = answer == "1" ? 0 : 1;
  });
}

std::vector<McDoc> load_sciq(const std::string& path) {
  return load_rows(path, "id", "correct_answer", [](const json& row, const std::string& at, McDoc& d) {
    d.context = py_lstrip(string_field(row, "support", at)) + "\nQuestion: " + string_field(row, "question", at) + "\nAnswer:";
    d.choices = {string_field(row, "distractor1", at), string_field(row, "distractor2", at),
                 string_field(row, "distractor3", at), string_field(row, "correct_answer", at)};
    d.gold = 3;
  });
}

std::vector<McDoc> load_openbookqa(const std::string& path) {
  return load_rows(path, "id", "answerKey", [](const json& row, const std::string& at, McDoc& d) {
    d.context = string_field(row, "question_stem", at);
    const json& cs = field(row, "choices", at);
    if (!cs.is_object()) throw FormatError(at + ": field 'choices': expected {\"text\": [...], \"label\": [...]}, got " + short_value(cs));
    d.choices = string_list(cs, "text", at, "choices.");
    const std::vector<std::string> labels = string_list(cs, "label", at, "choices.");
    if (labels.size() != d.choices.size())
      throw FormatError(at + ": field 'choices': " + std::to_string(d.choices.size()) + " texts but " +
                        std::to_string(labels.size()) + " labels");
    d.gold = index_of_label(labels, py_lstrip(string_field(row, "answerKey", at)), at, "answerKey");
  });
}

std::vector<McDoc> load_boolq(const std::string& path) {
  return load_rows(path, "idx", "label", [](const json& row, const std::string& at, McDoc& d) {
    d.context = string_field(row, "passage", at) + "\nQuestion: " + string_field(row, "question", at) + "?\nAnswer:";
    d.choices = {"no", "yes"};
    d.gold = labelled_int(row, "label", at);
  });
}

std::vector<McDoc> load_copa(const std::string& path) {
  return load_rows(path, "idx", "label", [](const json& row, const std::string& at, McDoc& d) {
    const std::string q = string_field(row, "question", at);
    if (q != "cause" && q != "effect")
      throw FormatError(at + ": field 'question': expected \"cause\" or \"effect\", got " + short_value(row["question"]));
    // The harness drops the premise's final character (its period) and joins with a connective.
    d.context = py_drop_last(py_strip(string_field(row, "premise", at))) + (q == "cause" ? " because" : " therefore");
    // The leading space is part of the choice: after the target delimiter the continuation has two.
    for (const char* c : {"choice1", "choice2"}) {
      const std::string text = string_field(row, c, at);
      if (text.empty()) throw FormatError(at + ": field '" + std::string(c) + "' is empty");
      d.choices.push_back(" " + py_lower_first(text));
    }
    d.gold = labelled_int(row, "label", at);
  });
}

std::vector<McDoc> load_commonsense_qa(const std::string& path) {
  return load_rows(path, "id", "answerKey", [](const json& row, const std::string& at, McDoc& d) {
    const json& cs = field(row, "choices", at);
    if (!cs.is_object()) throw FormatError(at + ": field 'choices': expected {\"label\": [...], \"text\": [...]}, got " + short_value(cs));
    d.context = "Question: " + py_strip(string_field(row, "question", at)) + lettered_choices(exact_list(cs, "text", 5, at, "choices.")) +
                "\nAnswer:";
    d.choices = letters(5);
    // The harness's target is answerKey itself, found among the choices A..E (not among choices.label).
    d.gold = index_of_label(d.choices, string_field(row, "answerKey", at), at, "answerKey");
  });
}

std::vector<McDoc> load_social_iqa(const std::string& path) {
  return load_rows(path, "id", "label", [](const json& row, const std::string& at, McDoc& d) {
    d.context = "Q: " + string_field(row, "context", at) + " " + string_field(row, "question", at) + "\nA:";
    d.choices = {string_field(row, "answerA", at), string_field(row, "answerB", at), string_field(row, "answerC", at)};
    d.gold = labelled_int(row, "label", at) - 1;
  });
}

std::vector<McDoc> load_mmlu(const std::string& path) {
  std::map<std::string, int64_t> seen;
  return load_rows(path, "id", "answer", [&seen](const json& row, const std::string& at, McDoc& d) {
    d.subtask = string_field(row, "subject", at);
    d.subtask_doc = seen[d.subtask]++;
    if (d.subtask.empty() || d.subtask.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos)
      throw FormatError(at + ": field 'subject': expected a subject name like 'abstract_algebra', got " + short_value(row["subject"]));
    d.context = "The following are multiple choice questions (with answers) about " + py_replace(d.subtask, "_", " ") +
                ".\n\n" + py_strip(string_field(row, "question", at)) + lettered_choices(exact_list(row, "choices", 4, at)) +
                "\nAnswer:";
    d.choices = letters(4);
    d.gold = labelled_int(row, "answer", at);
  });
}

std::string verify_against_manifest(const std::string& path) {
  // The manifest sits in data/eval/ and lists paths relative to it; a task file is in data/eval/<task>/
  // (or beside the manifest).
  const size_t slash = path.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string name = path.substr(slash == std::string::npos ? 0 : slash + 1);
  const size_t up = folder.find_last_of('/');
  const std::string folder_name = folder.substr(up == std::string::npos ? 0 : up + 1);
  const std::string parent = up == std::string::npos ? "." : folder.substr(0, up);
  const std::vector<std::pair<std::string, std::string>> candidates = {{folder + "/manifest.json", name},
                                                                       {parent + "/manifest.json", folder_name + "/" + name}};
  for (const auto& [manifest, rel] : candidates) {
    if (!fs::is_file(manifest)) continue;
    json m;
    try {
      m = json::parse(fs::read_file(manifest));
    } catch (const std::exception& e) {
      throw Error(manifest + ": not valid JSON (" + std::string(e.what()) + "); reinstall with " + kInstallCommand + " --force");
    }
    if (!m.is_object() || !m.contains("files") || !m["files"].is_array()) continue;
    for (const auto& f : m["files"]) {
      if (!f.is_object() || f.value("path", "") != rel) continue;
      const std::string want = f.value("sha256", "");
      const std::string got = sha256_file(path);
      if (got != want)
        throw Error(path + ": checksum mismatch (SHA-256 " + got + ", " + manifest + " has " + want +
                    "): the file was truncated or edited; reinstall with " + kInstallCommand + " --force");
      return manifest;
    }
  }
  return "";
}

std::string find_task_file(const std::string& task, const std::string& dir) {
  std::vector<std::string> names;
  if (task == "hellaswag") {
    names = {"hellaswag_val.jsonl", "hellaswag/hellaswag_val.jsonl"};
  } else if (task == "arc_easy" || task == "arc_challenge") {
    const std::string n = task == "arc_easy" ? "ARC-Easy" : "ARC-Challenge";
    names = {n + "-Test.jsonl", n + "/" + n + "-Test.jsonl", "ARC-V1-Feb2018-2/" + n + "/" + n + "-Test.jsonl"};
  } else if (task == "piqa") {
    names = {"valid.jsonl", "piqa/valid.jsonl", "dev.jsonl", "piqa/dev.jsonl"};
  } else {
    const TaskInfo& info = task_info(task);  // throws naming the known tasks
    names = {info.file_hint, task + "_" + info.split + ".jsonl"};
  }
  for (const auto& n : names)
    if (fs::is_file(dir + "/" + n)) return dir + "/" + n;
  return "";
}

TaskData load_task(const std::string& task, const std::string& data, const std::string& data_dir,
                   const std::string& labels) {
  TaskData t;
  t.info = task_info(task);
  std::string path = data;
  if (path.empty()) {
    if (data_dir.empty()) throw Error(task + ": no data file: pass --data FILE or --data-dir DIR");
    path = find_task_file(task, data_dir);
    if (path.empty())
      throw Error(task + ": no " + t.info.file_hint + " under " + data_dir + "; install the evaluation sets with " +
                  kInstallCommand + " (docs/eval.md)");
  }
  if (!fs::is_file(path)) throw Error(task + ": " + path + ": no such file");
  t.source = path;
  verify_against_manifest(path);
  if (task == "hellaswag") {
    t.docs = load_hellaswag(path);
  } else if (task == "arc_easy" || task == "arc_challenge") {
    t.docs = load_arc(path);
  } else if (task == "winogrande") {
    t.docs = load_winogrande(path);
  } else if (task == "sciq") {
    t.docs = load_sciq(path);
  } else if (task == "openbookqa") {
    t.docs = load_openbookqa(path);
  } else if (task == "boolq") {
    t.docs = load_boolq(path);
  } else if (task == "copa") {
    t.docs = load_copa(path);
  } else if (task == "commonsense_qa") {
    t.docs = load_commonsense_qa(path);
  } else if (task == "social_iqa") {
    t.docs = load_social_iqa(path);
  } else if (task == "mmlu") {
    t.docs = load_mmlu(path);
  } else {
    std::string lab = labels;
    if (lab.empty() && path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0) {
      const std::string guess = path.substr(0, path.size() - 6) + "-labels.lst";
      if (fs::is_file(guess)) lab = guess;
    }
    if (!lab.empty()) t.source += " + " + lab;
    t.docs = load_piqa(path, lab);
  }
  return t;
}

}  // namespace gqe::eval
