// Zero-shot multiple-choice tasks read from their public files, rendered exactly as
// lm-evaluation-harness 0.4 renders them (docs/eval.md, "What is computed, exactly"). Torch-free.
//
//   hellaswag      rowanz hellaswag_val.jsonl (label int) or the HF row layout (label string);
//                  context = preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)),
//                  choices = preprocess(ending) for each ending.
//   arc_easy,      ARC-{Easy,Challenge}-Test.jsonl, original nested layout (question.stem,
//   arc_challenge  question.choices[{text,label}]) or the flat HF layout (question, choices{text[],label[]});
//                  context = "Question: " + question + "\nAnswer:", gold = labels.index(answerKey).
//   piqa           valid.jsonl (goal, sol1, sol2) + line-aligned valid-labels.lst (0/1), or rows that
//                  carry "label" (HF layout); context = "Question: " + goal + "\nAnswer:".
// The others read the Hugging Face row layout (scripts/install-eval-data.sh writes <task>/<split>.jsonl):
//   winogrande     i = sentence.index("_"); the options fill the context, sentence[:i] + option1/2, and
//                  the continuation sentence[i+1:].strip() is shared; gold = {"1": 0, "2": 1}[answer].
//   sciq           support.lstrip() + "\nQuestion: " + question + "\nAnswer:",
//                  choices [distractor1, distractor2, distractor3, correct_answer], gold 3.
//   openbookqa     question_stem; choices.text; gold = choices.label.index(answerKey.lstrip()).
//   boolq          passage + "\nQuestion: " + question + "?\nAnswer:", choices [no, yes], gold label.
//   copa           premise.strip()[:-1] + " because" (cause) / " therefore" (effect);
//                  choices " " + choice[0].lower() + choice[1:], gold label.
//   commonsense_qa "Question: " + question.strip() + "\nA. t0\nB. t1\nC. t2\nD. t3\nE. t4\nAnswer:",
//                  choices A..E, gold = index of answerKey.
//   social_iqa     "Q: " + context + " " + question + "\nA:", choices [answerA, answerB, answerC],
//                  gold int(label) - 1.
//   mmlu           one file of the 57 subjects' test rows (question, subject, choices[4], answer);
//                  "The following are multiple choice questions (with answers) about " + subject with
//                  '_' as ' ' + ".\n\n" + question.strip() + "\nA. c0\nB. c1\nC. c2\nD. c3\nAnswer:",
//                  choices A..D, gold answer.
//
// Every request's continuation is " " + choice (the harness's target_delimiter), except winogrande's,
// which is " " + the shared continuation (the context being the choice).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gqe::eval {

struct McDoc {
  std::string id;                    // dataset id (ind / id), or the line number when the row has none
  int64_t line = 0;                  // 1-based line in the source file
  std::string context;               // the rendered prompt, no trailing space
  std::vector<std::string> choices;  // without the leading delimiter space
  int64_t gold = -1;                 // index into choices
  // Set for winogrande (the harness's "multiple input" tasks): choices[i] is request i's context and
  // every request continues with " " + *shared_continuation; `context` is unused.
  std::optional<std::string> shared_continuation;
  std::string subtask;         // mmlu: the subject; "" elsewhere
  int64_t subtask_doc = -1;    // mmlu: index among the subject's docs (the harness's doc_id there)
};

struct TaskInfo {
  std::string name;       // "hellaswag", "arc_easy", ...
  std::string version;    // the harness task's metadata.version as its table prints it ("Yaml" when unset)
  std::string split;      // the split scored here: the harness's own, except where `note` says otherwise
  int64_t full_size;      // number of docs in that split
  std::string file_hint;  // the file looked for under --data-dir, as installed or downloaded
  bool acc_norm;          // the harness reports acc_norm beside acc (its metric_list)
  std::string doc_to_text;  // the prompt, as the harness's config writes it (for the results JSON)
  std::string note;       // where this differs from the harness's task ("" when it does not)
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
std::vector<McDoc> load_winogrande(const std::string& path);
std::vector<McDoc> load_sciq(const std::string& path);
std::vector<McDoc> load_openbookqa(const std::string& path);
std::vector<McDoc> load_boolq(const std::string& path);
std::vector<McDoc> load_copa(const std::string& path);
std::vector<McDoc> load_commonsense_qa(const std::string& path);
std::vector<McDoc> load_social_iqa(const std::string& path);
std::vector<McDoc> load_mmlu(const std::string& path);
std::vector<McDoc> load_arc(const std::string& path);
// labels_path may be empty: then every row must carry "label".
std::vector<McDoc> load_piqa(const std::string& jsonl_path, const std::string& labels_path);

// The harness's per-doc renderings, exposed for tests and other front ends.
std::string hellaswag_context(const std::string& activity_label, const std::string& ctx_a, const std::string& ctx_b);
std::string question_answer_context(const std::string& question);  // "Question: " + q + "\nAnswer:"

// Loads `task` from `data` (a file) or, when `data` is empty, from the standard file names under
// `data_dir` (see docs/eval.md). For piqa, `labels` overrides the labels file (default: the .jsonl's
// name with "-labels.lst", when it exists). When a manifest.json written by scripts/install-eval-data.sh
// lists the file (in its folder or the one above), the file's SHA-256 must match it.
TaskData load_task(const std::string& task, const std::string& data, const std::string& data_dir,
                   const std::string& labels = "");

// The file load_task would read for `task` under `data_dir`, or "" when none of the names exists.
std::string find_task_file(const std::string& task, const std::string& data_dir);

// Checks `path` against the manifest.json of scripts/install-eval-data.sh in its folder or the folder
// above, when one lists it; throws gqe::Error naming the file and the reinstall command on a mismatch.
// Returns the manifest's path when the file was checked, "" when no manifest lists it.
std::string verify_against_manifest(const std::string& path);

// The command that installs the real evaluation sets, for error messages.
inline const char* kInstallCommand = "scripts/install-eval-data.sh";

}  // namespace gqe::eval
