// The tasks read from the Hugging Face row layout scripts/install-eval-data.sh installs (winogrande, sciq,
// openbookqa, boolq, copa, commonsense_qa, social_iqa, mmlu): each prompt, choice list, gold and request
// checked by hand against lm-eval 0.4.13's task YAML / utils.py; the data directory lookup, the manifest
// check and the errors. The rows are written here in each dataset's field layout, not copied from it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "eval/eval_test_util.h"
#include "test_util.h"
#include "gqe/core/error.h"
#include "gqe/eval/harness.h"
#include "gqe/eval/requests.h"
#include "gqe/core/sha256.h"
#include "gqe/eval/tasks.h"

using namespace gqe::eval;
using namespace gqe::eval::testing;
using gqe::test::scratch_dir;
using gqe::sha256_hex;

TEST(Winogrande, OptionsFillTheContextAndTheContinuationIsShared) {
  const std::string dir = scratch_dir("eval/wg");
  const auto docs = load_winogrande(write(dir + "/validation.jsonl",
      R"({"sentence": "Ann lent Beth a pen because _ had two of them. ", "option1": "Ann", "option2": "Beth", "answer": "1"})" "\n"
      R"({"sentence": "The cup fell off the table, so the _ broke.", "option1": "cup", "option2": "table", "answer": "2"})" "\n"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].choices[0], "Ann lent Beth a pen because Ann");
  EXPECT_EQ(docs[0].choices[1], "Ann lent Beth a pen because Beth");
  EXPECT_EQ(*docs[0].shared_continuation, "had two of them.");  // sentence[idx+1:].strip()
  EXPECT_EQ(docs[0].gold, 0);
  EXPECT_EQ(docs[1].gold, 1);
  const auto reqs = build_requests(docs);
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[1].context, "Ann lent Beth a pen because Beth");
  EXPECT_EQ(reqs[1].continuation, " had two of them.");
  EXPECT_EQ(reqs[2].context, "The cup fell off the table, so the cup");
  EXPECT_EQ(reqs[3].continuation, " broke.");
}

TEST(Sciq, SupportQuestionAnswerAndTheCorrectAnswerLast) {
  const std::string dir = scratch_dir("eval/sciq");
  const auto docs = load_sciq(write(dir + "/validation.jsonl",
      R"({"question": "What do plants make?", "distractor3": "salt", "distractor1": "iron", "distractor2": "sand", "correct_answer": "sugar", "support": " \n Plants make sugar. "})" "\n"
      R"({"question": "Who?", "distractor3": "c", "distractor1": "a", "distractor2": "b", "correct_answer": "d", "support": ""})" "\n"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].context, "Plants make sugar. \nQuestion: What do plants make?\nAnswer:");  // lstrip only
  EXPECT_EQ(docs[0].choices, (std::vector<std::string>{"iron", "sand", "salt", "sugar"}));
  EXPECT_EQ(docs[0].gold, 3);
  EXPECT_EQ(docs[1].context, "\nQuestion: Who?\nAnswer:");
  EXPECT_EQ(build_requests(docs)[3].continuation, " sugar");
  EXPECT_EQ(task_info("sciq").split, "validation");
  EXPECT_NE(task_info("sciq").note.find("test split"), std::string::npos);
  EXPECT_TRUE(task_info("sciq").acc_norm);
}

TEST(Openbookqa, QuestionStemAloneAndTheLabelIndexOfTheStrippedKey) {
  const std::string dir = scratch_dir("eval/obqa");
  const auto docs = load_openbookqa(write(dir + "/test.jsonl",
      R"({"id": "7-980", "question_stem": "The sun is responsible for", "choices": {"text": ["puppies learning new tricks", "plants sprouting, blooming and wilting"], "label": ["A", "B"]}, "answerKey": " B"})" "\n"));
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].id, "7-980");
  EXPECT_EQ(docs[0].context, "The sun is responsible for");
  EXPECT_EQ(docs[0].gold, 1);
  EXPECT_EQ(build_requests(docs)[1].continuation, " plants sprouting, blooming and wilting");
  EXPECT_TRUE(task_info("openbookqa").acc_norm);
}

TEST(Boolq, PassageQuestionMarkAndNoYes) {
  const std::string dir = scratch_dir("eval/boolq");
  const auto docs = load_boolq(write(dir + "/validation.jsonl",
      R"({"question": "is the sky blue", "passage": "Sky -- The sky is blue by day.", "idx": 3, "label": 1})" "\n"
      R"({"question": "is ice hot", "passage": "Ice -- Ice is cold.", "idx": 4, "label": 0})" "\n"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].context, "Sky -- The sky is blue by day.\nQuestion: is the sky blue?\nAnswer:");
  EXPECT_EQ(docs[0].choices, (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(docs[0].gold, 1);
  EXPECT_EQ(docs[0].id, "3");
  EXPECT_EQ(docs[1].gold, 0);
  EXPECT_EQ(build_requests(docs)[1].continuation, " yes");
  EXPECT_FALSE(task_info("boolq").acc_norm);
  EXPECT_EQ(task_info("boolq").version, "2");
}

TEST(Copa, ConnectiveReplacesThePeriodAndChoicesKeepTheirLeadingSpace) {
  const std::string dir = scratch_dir("eval/copa");
  const auto docs = load_copa(write(dir + "/validation.jsonl",
      R"({"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.", "choice2": "Water flowed from the spout.", "question": "effect", "idx": 0, "label": 1})" "\n"
      R"({"premise": " My body cast a shadow over the grass. ", "choice1": "The sun was rising.", "choice2": "The grass was cut.", "question": "cause", "idx": 1, "label": 0})" "\n"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].context, "The man turned on the faucet therefore");
  EXPECT_EQ(docs[0].choices, (std::vector<std::string>{" the toilet filled with water.", " water flowed from the spout."}));
  EXPECT_EQ(docs[0].gold, 1);
  EXPECT_EQ(docs[1].context, "My body cast a shadow over the grass because");
  EXPECT_EQ(docs[1].gold, 0);
  // The harness's " " target delimiter before the choice's own space: two spaces.
  EXPECT_EQ(build_requests(docs)[1].continuation, "  water flowed from the spout.");
}

TEST(CommonsenseQa, LetteredChoicesInThePromptAndLettersAsChoices) {
  const std::string dir = scratch_dir("eval/csqa");
  const auto docs = load_commonsense_qa(write(dir + "/validation.jsonl",
      R"({"id": "1afa", "question": " Where would you keep a pen? ", "question_concept": "pen", "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["desk", "sky", "sea", "moon", "sun"]}, "answerKey": "D"})" "\n"));
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].context, "Question: Where would you keep a pen?\nA. desk\nB. sky\nC. sea\nD. moon\nE. sun\nAnswer:");
  EXPECT_EQ(docs[0].choices, (std::vector<std::string>{"A", "B", "C", "D", "E"}));
  EXPECT_EQ(docs[0].gold, 3);
  EXPECT_EQ(build_requests(docs)[3].continuation, " D");
  EXPECT_EQ(task_info("commonsense_qa").version, "Yaml");  // its YAML has no metadata.version
}

TEST(SocialIqa, ContextQuestionAndLabelMinusOne) {
  const std::string dir = scratch_dir("eval/siqa");
  const auto docs = load_social_iqa(write(dir + "/validation.jsonl",
      R"({"context": "Tracy didn't go home that evening.", "question": "What does Tracy need to do before this?", "answerA": "make a new plan", "answerB": "Go home", "answerC": "Find somewhere to go", "label": "3"})" "\n"));
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].context, "Q: Tracy didn't go home that evening. What does Tracy need to do before this?\nA:");
  EXPECT_EQ(docs[0].choices[1], "Go home");
  EXPECT_EQ(docs[0].gold, 2);
  EXPECT_EQ(task_info("social_iqa").version, "0");
}

TEST(Mmlu, DescriptionPerSubjectLetteredChoicesAndLimitPerSubject) {
  const std::string dir = scratch_dir("eval/mmlu");
  std::string rows;
  for (int i = 0; i < 3; ++i)
    rows += R"({"question": " What is 2+2? ", "subject": "high_school_mathematics", "choices": ["3", "4", "5", "6"], "answer": 1})" "\n";
  for (int i = 0; i < 2; ++i)
    rows += R"({"question": "Which is a bone?", "subject": "anatomy", "choices": ["femur", "lung", "liver", "skin"], "answer": 0})" "\n";
  const auto docs = load_mmlu(write(dir + "/test.jsonl", rows));
  ASSERT_EQ(docs.size(), 5u);
  EXPECT_EQ(docs[0].context,
            "The following are multiple choice questions (with answers) about high school mathematics.\n\n"
            "What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:");
  EXPECT_EQ(docs[0].choices, (std::vector<std::string>{"A", "B", "C", "D"}));
  EXPECT_EQ(docs[0].gold, 1);
  EXPECT_EQ(docs[3].subtask, "anatomy");
  EXPECT_EQ(docs[4].subtask_doc, 1);
  EXPECT_EQ(build_requests(docs)[1].continuation, " B");
  // --limit 2 keeps the first two of each subject, as the harness limits each task of a group.
  const auto kept = limited_docs(docs, 2);
  ASSERT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept[2].subtask, "anatomy");
  EXPECT_EQ(limited_docs(docs, 0).size(), 5u);
}

TEST(MoreTasks, ErrorsNameTheFileLineFieldAndValue) {
  const std::string dir = scratch_dir("eval/more_err");
  std::string msg = error_of([&] {
    load_winogrande(write(dir + "/w1.jsonl", R"({"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"})" "\n"));
  });
  EXPECT_NE(msg.find("w1.jsonl:1: field 'sentence': no '_' blank to fill"), std::string::npos) << msg;
  msg = error_of([&] {
    load_winogrande(write(dir + "/w2.jsonl", R"({"sentence": "a _ b", "option1": "a", "option2": "b", "answer": "3"})" "\n"));
  });
  EXPECT_NE(msg.find("w2.jsonl:1: field 'answer': expected \"1\" or \"2\", got \"3\""), std::string::npos) << msg;
  msg = error_of([&] {
    load_copa(write(dir + "/c.jsonl", R"({"premise": "p.", "choice1": "a", "choice2": "b", "question": "why", "label": 0})" "\n"));
  });
  EXPECT_NE(msg.find("c.jsonl:1: field 'question': expected \"cause\" or \"effect\", got \"why\""), std::string::npos) << msg;
  msg = error_of([&] {
    load_commonsense_qa(write(dir + "/q.jsonl", R"({"question": "q", "choices": {"label": ["A"], "text": ["x", "y", "z", "w"]}, "answerKey": "A"})" "\n"));
  });
  EXPECT_NE(msg.find("q.jsonl:1: field 'choices.text': expected 5 entries, got 4"), std::string::npos) << msg;
  msg = error_of([&] {
    load_social_iqa(write(dir + "/s.jsonl", R"({"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c", "label": ""})" "\n"));
  });
  EXPECT_NE(msg.find("s.jsonl:1: field 'label' is empty: this row is unlabelled"), std::string::npos) << msg;
  msg = error_of([&] {
    load_boolq(write(dir + "/b.jsonl", R"({"question": "q", "passage": "p", "label": 2})" "\n"));
  });
  EXPECT_NE(msg.find("b.jsonl:1: field 'label': label 2 is out of range for 2 choices"), std::string::npos) << msg;
  msg = error_of([&] {
    load_openbookqa(write(dir + "/o.jsonl", R"({"question_stem": "q", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "E"})" "\n"));
  });
  EXPECT_NE(msg.find("o.jsonl:1: field 'answerKey': 'E' is not one of the choice labels [A,B]"), std::string::npos) << msg;
  msg = error_of([&] { load_mmlu(write(dir + "/m.jsonl", R"({"question": "q", "subject": "x", "choices": ["a", "b", "c"], "answer": 0})" "\n")); });
  EXPECT_NE(msg.find("m.jsonl:1: field 'choices': expected 4 entries, got 3"), std::string::npos) << msg;
}

TEST(MoreTasks, DataDirectoryLookupManifestAndUnknownTask) {
  const std::string dir = scratch_dir("eval/datadir");
  ::mkdir((dir + "/copa").c_str(), 0755);
  const std::string row = R"({"premise": "It rained.", "choice1": "A", "choice2": "B", "question": "effect", "idx": 0, "label": 0})" "\n";
  const std::string file = write(dir + "/copa/validation.jsonl", row);
  TaskData t = load_task("copa", "", dir);
  EXPECT_EQ(t.source, file);
  EXPECT_EQ(t.docs.size(), 1u);
  EXPECT_EQ(verify_against_manifest(file), "");  // no manifest: nothing to check

  // A manifest that lists the file: checked, and a changed file is named with the command that reinstalls.
  write(dir + "/manifest.json", R"({"format": 1, "files": [{"path": "copa/validation.jsonl", "task": "copa", "sha256": ")" +
                                    sha256_hex(row) + R"("}]})");
  EXPECT_EQ(verify_against_manifest(file), dir + "/manifest.json");
  EXPECT_EQ(load_task("copa", "", dir).docs.size(), 1u);
  write(file, row + row);
  std::string msg = error_of([&] { load_task("copa", "", dir); });
  EXPECT_NE(msg.find(file + ": checksum mismatch (SHA-256 " + sha256_hex(row + row)), std::string::npos) << msg;
  EXPECT_NE(msg.find("reinstall with scripts/install-eval-data.sh --force"), std::string::npos) << msg;
  msg = error_of([&] { load_task("copa", file, ""); });  // --data FILE is checked too
  EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;

  msg = error_of([&] { load_task("winogrande", "", dir); });
  EXPECT_NE(msg.find("winogrande: no winogrande/validation.jsonl under " + dir +
                     "; install the evaluation sets with scripts/install-eval-data.sh"),
            std::string::npos)
      << msg;
  msg = error_of([&] { load_task("lambada", "", dir); });
  EXPECT_NE(msg.find("unknown task 'lambada' (known: hellaswag, arc_easy, arc_challenge, piqa, winogrande, sciq, "
                     "openbookqa, boolq, copa, commonsense_qa, social_iqa, mmlu)"),
            std::string::npos)
      << msg;
}
