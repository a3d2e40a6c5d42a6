// Zero-shot multiple-choice tasks read from their public files, rendered exactly as
// lm-evaluation-harness renders them (docs/eval.md, "What is computed, exactly"). Torch-free.
//
//   hellaswag      rowanz hellaswag_val.jsonl (label int) or the HF row layout (label string);
//                  context = preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)),
//                  choices = preprocess(ending) for each ending.
//   arc_easy,      ARC-{Easy,Challenge}-Test.jsonl, original nested layout (question.stem,
//   arc_challenge  question.choices[{text,label}]) or the flat HF layout (question, choices{text[],label[]});
//                  context = "Question: " + question + "\nAnswer:", gold = labels.index(answerKey).
//   piqa           valid.jsonl (goal, sol1, sol2) + line-aligned valid-labels.lst (0/1), or rows that
//                  carry "label" (HF layout); context = "Question: " + goal + "\nAnswer:".
//
// Every request's continuation is " " + choice (the harness's target_delimiter).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gqe::eval {

struct McDoc {
  std::string id;                    // dataset id (ind / id), or the line number when the row has none
  int64_t line = 0;                  // 1-based line in the source file
  std::string context;               // the rendered prompt, no trailing space
  std::vector<std::string> choices;  // without the leading delimiter space
  int64_t gold = -1;                 // index into choices
};

struct TaskInfo {
  std::string name;       // "hellaswag", "arc_easy", "arc_challenge", "piqa"
  double version;         // the harness task's metadata.version
  std::string split;      // the split the harness scores
  int64_t full_size;      // number of docs in that split
  std::string file_hint;  // the file to pass, as users download it
};

const std::vector<TaskInfo>& known_tasks();
// Throws gqe::Error naming the known tasks.
const TaskInfo& task_info(const std::string& name);

struct TaskData {
  TaskInfo info;
  std::string source;  // file(s) read
  std::vector<McDoc> docs;
};

// Loaders. Errors (gqe::FormatError) name the file, the line and the field, and what was expected.
std::vector<McDoc> load_hellaswag(const std::string& path);
std::vector<McDoc> load_arc(const std::string& path);
// labels_path may be empty: then every row must carry "label".
std::vector<McDoc> load_piqa(const std::string& jsonl_path, const std::string& labels_path);

// The harness's per-doc renderings, exposed for tests and other front ends.
std::string hellaswag_context(const std::string& activity_label, const std::string& ctx_a, const std::string& ctx_b);
std::string question_answer_context(const std::string& question);  // "Question: " + q + "\nAnswer:"

// Loads `task` from `data` (a file) or, when `data` is empty, from the standard file names under
// `data_dir` (see docs/eval.md). For piqa, `labels` overrides the labels file (default: the .jsonl's
// name with "-labels.lst", when it exists).
TaskData load_task(const std::string& task, const std::string& data, const std::string& data_dir,
                   const std::string& labels = "");

// The file load_task would read for `task` under `data_dir`, or "" when none of the names exists.
std::string find_task_file(const std::string& task, const std::string& data_dir);

}  // namespace gqe::eval
