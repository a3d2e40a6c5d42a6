// Task loaders on small files in each public layout (field names as in the real datasets; the rows are
// written here, not copied from the datasets), and their errors.
#include <gtest/gtest.h>

#include "eval/eval_test_util.h"
#include "test_util.h"
#include "gqe/core/error.h"
#include "gqe/eval/requests.h"
#include "gqe/eval/tasks.h"

using namespace gqe::eval;
using namespace gqe::eval::testing;
using gqe::test::scratch_dir;

namespace {

const char* kHellaswagRows =
    R"({"ind": 7, "activity_label": "Kite flying", "ctx_a": "A boy holds a kite on a beach.", "ctx_b": "the BOY", "ctx": "A boy holds a kite on a beach. the BOY", "split": "val", "split_type": "indomain", "label": 2, "endings": ["eats a sandwich.", "paints the kite red.", "runs and lets the kite rise.", "sits down [step] quietly."], "source_id": "activitynet~v_test1"})"
    "\n"
    R"({"ind": 8, "activity_label": "Home and Garden", "ctx_a": "[header] How to water a fern [title] Check the soil. [step] Touch the soil with a finger.", "ctx_b": "", "ctx": "[header] How to water a fern [title] Check the soil. [step] Touch the soil with a finger.", "split": "val", "split_type": "zeroshot", "label": 0, "endings": ["[substeps] If it is dry, water it slowly.", "Paint the pot.", "[title] Buy a cactus. [step] Cacti need less water.", "Sing to it."], "source_id": "wikihow~0001"})"
    "\n";

}  // namespace

TEST(Hellaswag, RowanzLayoutRendersAsTheHarness) {
  const std::string dir = scratch_dir("eval/hs");
  const auto docs = load_hellaswag(write(dir + "/hellaswag_val.jsonl", kHellaswagRows));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].id, "7");
  EXPECT_EQ(docs[0].line, 1);
  EXPECT_EQ(docs[0].context, "Kite flying: A boy holds a kite on a beach. The boy");
  EXPECT_EQ(docs[0].choices[3], "sits down quietly.");
  EXPECT_EQ(docs[0].gold, 2);
  EXPECT_EQ(docs[1].context, "Home and Garden: How to water a fern. Check the soil. Touch the soil with a finger.");
  EXPECT_EQ(docs[1].choices[0], " If it is dry, water it slowly.");  // [substeps]: leading space survives
  EXPECT_EQ(docs[1].choices[2], " Buy a cactus. Cacti need less water.");  // no space before [title]: removed as a tag
  // Requests: continuation = " " + choice, so the [substeps] ending gets two spaces.
  const auto reqs = build_requests(docs);
  ASSERT_EQ(reqs.size(), 8u);
  EXPECT_EQ(reqs[4].context, docs[1].context);
  EXPECT_EQ(reqs[4].continuation, "  If it is dry, water it slowly.");
  EXPECT_EQ(reqs[1].continuation, " paints the kite red.");
  EXPECT_EQ(reqs[1].doc, 0);
  EXPECT_EQ(reqs[1].choice, 1);
}

TEST(Hellaswag, HuggingFaceLayoutHasStringLabels) {
  const std::string dir = scratch_dir("eval/hs_hf");
  const std::string row =
      R"({"ind": 24, "activity_label": "Dog walking", "ctx_a": "A woman walks a dog.", "ctx_b": "she", "ctx": "A woman walks a dog. she", "endings": ["a", "b", "c", "d"], "source_id": "x", "split": "validation", "split_type": "indomain", "label": "3"})";
  const auto docs = load_hellaswag(write(dir + "/hf.jsonl", row + "\n"));
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].gold, 3);
  EXPECT_EQ(docs[0].context, "Dog walking: A woman walks a dog. She");
}

TEST(Hellaswag, ErrorsNameFileLineAndField) {
  const std::string dir = scratch_dir("eval/hs_err");
  const std::string good = std::string(kHellaswagRows).substr(0, std::string(kHellaswagRows).find('\n') + 1);
  std::string msg = error_of([&] { load_hellaswag(write(dir + "/a.jsonl", good + good + "{\"ind\": 3, \"activity_label\": \n")); });
  EXPECT_NE(msg.find(dir + "/a.jsonl:3: not valid JSON"), std::string::npos) << msg;

  msg = error_of([&] { load_hellaswag(write(dir + "/b.jsonl", R"({"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "label": 0})" "\n")); });
  EXPECT_NE(msg.find("b.jsonl:1: missing field 'endings'"), std::string::npos) << msg;

  msg = error_of([&] { load_hellaswag(write(dir + "/c.jsonl", "\n" R"({"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "label": 0, "endings": ["p", 5]})" "\n")); });
  EXPECT_NE(msg.find("c.jsonl:2: field 'endings[1]': expected a string"), std::string::npos) << msg;

  msg = error_of([&] { load_hellaswag(write(dir + "/d.jsonl", R"({"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "label": "", "endings": ["p", "q"]})" "\n")); });
  EXPECT_NE(msg.find("d.jsonl:1: field 'label' is empty"), std::string::npos) << msg;

  msg = error_of([&] { load_hellaswag(write(dir + "/e.jsonl", R"({"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "label": 4, "endings": ["p", "q", "r", "s"]})" "\n")); });
  EXPECT_NE(msg.find("e.jsonl:1: field 'label': label 4 is out of range for 4 choices"), std::string::npos) << msg;

  msg = error_of([&] { load_hellaswag(write(dir + "/f.jsonl", "[1, 2]\n")); });
  EXPECT_NE(msg.find("f.jsonl:1: expected a JSON object"), std::string::npos) << msg;

  msg = error_of([&] { load_hellaswag(write(dir + "/g.jsonl", "\n\n")); });
  EXPECT_NE(msg.find("g.jsonl: no examples"), std::string::npos) << msg;

  msg = error_of([&] { load_hellaswag(dir + "/missing.jsonl"); });
  EXPECT_NE(msg.find("missing.jsonl: cannot open"), std::string::npos) << msg;
}

TEST(Hellaswag, UnlabelledRowsAreNamedAsSuch) {
  const std::string dir = scratch_dir("eval/hs_unlabelled");
  const std::string row = R"({"activity_label": "x", "ctx_a": "a", "ctx_b": "b", "endings": ["p", "q"], "label": )";
  for (const char* label : {"-1", "\"-1\""}) {
    const std::string msg = error_of([&] { load_hellaswag(write(dir + "/t.jsonl", row + label + "}\n")); });
    EXPECT_NE(msg.find("t.jsonl:1: field 'label' is -1: this row is unlabelled (the test split)"), std::string::npos)
        << msg;
  }
  const std::string msg = error_of([&] { load_hellaswag(write(dir + "/u.jsonl", row + "-2}\n")); });
  EXPECT_NE(msg.find("u.jsonl:1: field 'label': label -2 is out of range for 2 choices"), std::string::npos) << msg;
}

TEST(Tasks, BrokenLinesGiveShortMessages) {
  const std::string dir = scratch_dir("eval/tasks_broken");
  // A multi-megabyte line that is not JSON: the message stays one short line, not the line echoed back.
  const std::string huge = "{\"ctx_a\": \"" + std::string(8u << 20, 'x') + "\n";
  std::string msg = error_of([&] { load_hellaswag(write(dir + "/huge.jsonl", huge)); });
  EXPECT_NE(msg.find("huge.jsonl:1: not valid JSON"), std::string::npos) << msg.substr(0, 300);
  EXPECT_LT(msg.size(), 600u);
  // A NUL byte is named as such (the JSON library reads it as the end of the input).
  msg = error_of([&] { load_arc(write(dir + "/nul.jsonl", std::string("{\"id\": \"Q\",") + '\0' + " \"question\": 1}\n")); });
  EXPECT_NE(msg.find("nul.jsonl:1: not valid JSON: a NUL byte at byte offset 11"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("end of input"), std::string::npos) << msg;
  // An id too long to quote is cut.
  const std::string long_id = R"({"ind": [")" + std::string(1000, 'i') + R"("], "activity_label": "x", "ctx_a": "a", "ctx_b": "b", "endings": ["p", "q"], "label": 0})";
  EXPECT_LT(load_hellaswag(write(dir + "/id.jsonl", long_id + "\n"))[0].id.size(), 100u);
}

TEST(Hellaswag, CrlfAndByteOrderMarkAreAccepted) {
  const std::string dir = scratch_dir("eval/hs_crlf");
  std::string rows = kHellaswagRows;
  rows = "\xEF\xBB\xBF" + rows.replace(rows.find('\n'), 1, "\r\n");
  const auto docs = load_hellaswag(write(dir + "/x.jsonl", rows));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[1].gold, 0);
}

// Found by fuzz/tasks_fuzz: a number beyond double range escaped the loaders as a JSON library exception.
TEST(Tasks, NumberBeyondDoubleRangeIsAFormatErrorNamingTheLine) {
  const std::string dir = scratch_dir("eval/tasks_number_overflow");
  const std::string path = write(dir + "/ARC-Easy-Test.jsonl", "{\"id\": 1e999}\n");
  EXPECT_THROW(load_arc(path), gqe::FormatError);
  const std::string msg = error_of([&] { load_hellaswag(write(dir + "/h.jsonl", "78888888888e888888\n")); });
  EXPECT_NE(msg.find(dir + "/h.jsonl:1: the number 78888888888e888888 is out of range"), std::string::npos) << msg;
}

TEST(Arc, OriginalNestedLayoutWithLetterAndNumericLabels) {
  const std::string dir = scratch_dir("eval/arc");
  const std::string rows =
      R"({"id": "Q1", "question": {"stem": "Which object is the heaviest?", "choices": [{"text": "a feather", "label": "A"}, {"text": "a brick", "label": "B"}, {"text": "a leaf", "label": "C"}, {"text": "a coin", "label": "D"}]}, "answerKey": "B"})" "\n"
      R"({"id": "Q2", "question": {"stem": "What do plants need to grow?", "choices": [{"text": "light", "label": "1"}, {"text": "noise", "label": "2"}, {"text": "plastic", "label": "3"}]}, "answerKey": "1"})" "\n"
      R"({"id": "Q3", "question": {"stem": "Pick the liquid.", "choices": [{"text": "ice", "label": "1"}, {"text": "steam", "label": "2"}, {"text": "rock", "label": "3"}, {"text": "sand", "label": "4"}, {"text": "water", "label": "5"}]}, "answerKey": "5"})" "\n";
  const auto docs = load_arc(write(dir + "/ARC-Easy-Test.jsonl", rows));
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].context, "Question: Which object is the heaviest?\nAnswer:");
  EXPECT_EQ(docs[0].gold, 1);
  EXPECT_EQ(docs[1].choices.size(), 3u);  // 3-choice question
  EXPECT_EQ(docs[1].gold, 0);             // numeric label "1"
  EXPECT_EQ(docs[2].choices.size(), 5u);  // 5-choice question
  EXPECT_EQ(docs[2].gold, 4);
  EXPECT_EQ(docs[2].id, "Q3");
  const auto reqs = build_requests(docs);
  EXPECT_EQ(reqs.size(), 12u);
  EXPECT_EQ(reqs[1].continuation, " a brick");
}

TEST(Arc, HuggingFaceFlatLayout) {
  const std::string dir = scratch_dir("eval/arc_hf");
  const std::string rows =
      R"({"id": "Mercury_1", "question": "Which gas do plants take in?", "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"})" "\n";
  const auto docs = load_arc(write(dir + "/test.jsonl", rows));
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].context, "Question: Which gas do plants take in?\nAnswer:");
  EXPECT_EQ(docs[0].choices[1], "carbon dioxide");
  EXPECT_EQ(docs[0].gold, 1);
}

TEST(Arc, RepeatedLabelsTakeTheFirstMatch) {
  // lm-evaluation-harness: doc_to_target "{{choices.label.index(answerKey)}}", the first index.
  const std::string dir = scratch_dir("eval/arc_repeat");
  const std::string rows =
      R"({"id": "Q", "question": "q?", "choices": {"text": ["w", "x", "y", "z"], "label": ["A", "B", "A", "B"]}, "answerKey": "B"})" "\n"
      R"({"id": "R", "question": {"stem": "q?", "choices": [{"text": "x", "label": "1"}, {"text": "y", "label": "1"}]}, "answerKey": "1"})" "\n";
  const auto docs = load_arc(write(dir + "/r.jsonl", rows));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].gold, 1);
  EXPECT_EQ(docs[1].gold, 0);
}

TEST(Arc, Errors) {
  const std::string dir = scratch_dir("eval/arc_err");
  std::string msg = error_of([&] {
    load_arc(write(dir + "/a.jsonl", R"({"id": "Q", "question": "q?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "E"})" "\n"));
  });
  EXPECT_NE(msg.find("a.jsonl:1: field 'answerKey': 'E' is not one of the choice labels [A,B]"), std::string::npos) << msg;
  msg = error_of([&] {
    load_arc(write(dir + "/b.jsonl", R"({"id": "Q", "question": {"stem": "q?", "choices": [{"text": "x"}, {"text": "y", "label": "B"}]}, "answerKey": "B"})" "\n"));
  });
  EXPECT_NE(msg.find("b.jsonl:1: missing field 'question.choices[0].label'"), std::string::npos) << msg;
  msg = error_of([&] {
    load_arc(write(dir + "/c.jsonl", R"({"id": "Q", "question": "q?", "choices": {"text": ["x", "y"], "label": ["A"]}, "answerKey": "A"})" "\n"));
  });
  EXPECT_NE(msg.find("c.jsonl:1: field 'choices': 2 texts but 1 labels"), std::string::npos) << msg;
  msg = error_of([&] { load_arc(write(dir + "/d.jsonl", R"({"id": "Q", "question": 5, "answerKey": "A"})" "\n")); });
  EXPECT_NE(msg.find("d.jsonl:1: field 'question': expected an object {stem, choices} or a string"), std::string::npos) << msg;
}

TEST(Piqa, JsonlWithLineAlignedLabels) {
  const std::string dir = scratch_dir("eval/piqa");
  const std::string rows =
      R"({"goal": "To open a jar,", "sol1": "twist the lid.", "sol2": "bite the glass."})" "\n"
      R"({"goal": "Dry wet shoes", "sol1": "in the freezer.", "sol2": "with newspaper inside."})" "\n";
  write(dir + "/valid.jsonl", rows);
  write(dir + "/valid-labels.lst", "0\n1\n");
  const auto docs = load_piqa(dir + "/valid.jsonl", dir + "/valid-labels.lst");
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].context, "Question: To open a jar,\nAnswer:");
  EXPECT_EQ(docs[0].choices, (std::vector<std::string>{"twist the lid.", "bite the glass."}));
  EXPECT_EQ(docs[0].gold, 0);
  EXPECT_EQ(docs[1].gold, 1);
  // load_task finds the labels next to the jsonl, and under a data directory.
  EXPECT_EQ(load_task("piqa", dir + "/valid.jsonl", "").docs[1].gold, 1);
  const TaskData t = load_task("piqa", "", dir);
  EXPECT_EQ(t.source, dir + "/valid.jsonl + " + dir + "/valid-labels.lst");
  EXPECT_EQ(t.docs.size(), 2u);
}

TEST(Piqa, HuggingFaceRowsCarryTheLabel) {
  const std::string dir = scratch_dir("eval/piqa_hf");
  write(dir + "/validation.jsonl", R"({"goal": "g", "sol1": "a", "sol2": "b", "label": 1})" "\n");
  EXPECT_EQ(load_task("piqa", dir + "/validation.jsonl", "").docs[0].gold, 1);
}

TEST(Piqa, LabelErrors) {
  const std::string dir = scratch_dir("eval/piqa_err");
  const std::string rows = R"({"goal": "g1", "sol1": "a", "sol2": "b"})" "\n" R"({"goal": "g2", "sol1": "a", "sol2": "b"})" "\n";
  write(dir + "/valid.jsonl", rows);
  write(dir + "/short-labels.lst", "1\n");
  std::string msg = error_of([&] { load_piqa(dir + "/valid.jsonl", dir + "/short-labels.lst"); });
  EXPECT_NE(msg.find("short-labels.lst: 1 labels for 2 examples in " + dir + "/valid.jsonl"), std::string::npos) << msg;
  write(dir + "/bad-labels.lst", "0\n2\n");
  msg = error_of([&] { load_piqa(dir + "/valid.jsonl", dir + "/bad-labels.lst"); });
  EXPECT_NE(msg.find("bad-labels.lst:2: expected a label 0 or 1, got '2'"), std::string::npos) << msg;
  write(dir + "/gap-labels.lst", "0\n\n1\n");
  msg = error_of([&] { load_piqa(dir + "/valid.jsonl", dir + "/gap-labels.lst"); });
  EXPECT_NE(msg.find("gap-labels.lst: blank line"), std::string::npos) << msg;
  write(dir + "/test.jsonl", R"({"goal": "g", "sol1": "a", "sol2": "b", "label": -1})" "\n");
  msg = error_of([&] { load_piqa(dir + "/test.jsonl", ""); });
  EXPECT_NE(msg.find("test.jsonl:1: field 'label' is -1: this row is unlabelled"), std::string::npos) << msg;
  msg = error_of([&] { load_piqa(dir + "/valid.jsonl", ""); });
  EXPECT_NE(msg.find("valid.jsonl:1: missing field 'label' and no labels file"), std::string::npos) << msg;
  write(dir + "/nogoal.jsonl", R"({"sol1": "a", "sol2": "b"})" "\n");
  write(dir + "/nogoal-labels.lst", "0\n");
  msg = error_of([&] { load_task("piqa", dir + "/nogoal.jsonl", ""); });
  EXPECT_NE(msg.find("nogoal.jsonl:1: missing field 'goal'"), std::string::npos) << msg;
}

TEST(Tasks, DataDirectoryAndUnknownTask) {
  const std::string dir = scratch_dir("eval/tasks");
  ::mkdir((dir + "/ARC-Challenge").c_str(), 0755);
  write(dir + "/ARC-Challenge/ARC-Challenge-Test.jsonl",
        R"({"id": "Q", "question": "q?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "B"})" "\n");
  const TaskData t = load_task("arc_challenge", "", dir);
  EXPECT_EQ(t.source, dir + "/ARC-Challenge/ARC-Challenge-Test.jsonl");
  EXPECT_EQ(t.info.full_size, 1172);
  std::string msg = error_of([&] { load_task("arc_easy", "", dir); });
  EXPECT_NE(msg.find("arc_easy: no ARC-Easy-Test.jsonl under " + dir + "; install the evaluation sets with "
                     "scripts/install-eval-data.sh"), std::string::npos) << msg;
  msg = error_of([&] { load_task("winogrand", "x", ""); });
  EXPECT_NE(msg.find("unknown task 'winogrand' (known: hellaswag, arc_easy, arc_challenge, piqa, winogrande,"), std::string::npos) << msg;
}
