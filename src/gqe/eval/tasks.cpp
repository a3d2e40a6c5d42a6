#include "gqe/eval/tasks.h"

#include <nlohmann/json.hpp>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
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
  json row;
  try {
    row = json::parse(l.text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number beyond double range
    throw FormatError(where(path, l.number) + ": invalid JSON (" + e.what() + ")");
  }
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
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// An integer label given as a JSON integer or an all-digit string (the HF layout stores strings).
// Returns -1 for "" (an unlabelled test row).
int64_t int_label(const json& v, const std::string& name, const std::string& at) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string s = py_strip(v.get<std::string>());
    if (s.empty()) return -1;
    if (s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos) return std::stoll(s);
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
  static const std::vector<TaskInfo> tasks = {
      {"hellaswag", 1.0, "validation", 10042, "hellaswag_val.jsonl"},
      {"arc_easy", 1.0, "test", 2376, "ARC-Easy-Test.jsonl"},
      {"arc_challenge", 1.0, "test", 1172, "ARC-Challenge-Test.jsonl"},
      {"piqa", 1.0, "validation", 1838, "valid.jsonl + valid-labels.lst"},
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
    d.gold = int_label(field(row, "label", at), "label", at);
    if (d.gold < 0)
      throw FormatError(at + ": field 'label' is empty: this row is unlabelled (the test split); the harness scores "
                             "the validation split, hellaswag_val.jsonl");
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
    for (size_t i = 0; i < labels.size(); ++i)
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
      d.gold = int_label(*it, "label", at);
      if (d.gold < 0) throw FormatError(at + ": field 'label' is empty or -1: unlabelled row (the test split)");
      check_gold(d, at, "label");
    }
    docs.push_back(std::move(d));
  }
  no_docs(jsonl_path, docs);
  return docs;
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
    task_info(task);  // throws naming the known tasks
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
    if (path.empty()) throw Error(task + ": no " + t.info.file_hint + " under " + data_dir + " (see docs/eval.md)");
  }
  if (!fs::is_file(path)) throw Error(task + ": " + path + ": no such file");
  t.source = path;
  if (task == "hellaswag") {
    t.docs = load_hellaswag(path);
  } else if (task == "arc_easy" || task == "arc_challenge") {
    t.docs = load_arc(path);
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
