// Python string semantics and HellaSwag's preprocess (docs/eval.md, "What is computed, exactly").
#include <gtest/gtest.h>

#include "gqe/eval/tasks.h"
#include "gqe/eval/text.h"

using namespace gqe::eval;

TEST(PyText, StripRemovesUnicodeWhitespaceOnly) {
  EXPECT_EQ(py_strip("  \t a b \n\r"), "a b");
  EXPECT_EQ(py_strip("\xC2\xA0x\xE2\x80\x83"), "x");  // NBSP and EM SPACE are str.isspace()
  EXPECT_EQ(py_strip("\x1Fx\x1C"), "x");              // so are the ASCII separators 0x1C-0x1F
  EXPECT_EQ(py_strip("\xC3\xA9"), "\xC3\xA9");         // e-acute is not
  EXPECT_EQ(py_strip("   "), "");
  EXPECT_EQ(py_rstrip("Answer:\n "), "Answer:");
  EXPECT_EQ(py_rstrip(" a"), " a");
}

TEST(PyText, CapitalizeLowercasesTheRest) {
  EXPECT_EQ(py_capitalize("he"), "He");
  EXPECT_EQ(py_capitalize("the MAN in a RED shirt"), "The man in a red shirt");
  EXPECT_EQ(py_capitalize("1ST Place"), "1st place");
  EXPECT_EQ(py_capitalize(""), "");
  EXPECT_EQ(py_capitalize("\xC3\xA9T\xC3\x89"), "\xC3\x89t\xC3\xA9");  // "éTÉ" -> "Été"
}

TEST(PyText, LenCountsCodePoints) {
  EXPECT_EQ(py_len("abc"), 3);
  EXPECT_EQ(py_len("caf\xC3\xA9"), 4);         // 5 bytes
  EXPECT_EQ(py_len("\xE2\x80\x94x"), 2);       // em dash
  EXPECT_EQ(py_len("\xF0\x9F\x98\x80"), 1);    // emoji, 4 bytes
}

TEST(PyText, ReplaceIsOnePassNonOverlapping) {
  EXPECT_EQ(py_replace("a   b", "  ", " "), "a  b");  // three spaces -> two, not one
  EXPECT_EQ(py_replace("a    b", "  ", " "), "a  b");
  EXPECT_EQ(py_replace("x [title]y [title]", " [title]", ". "), "x. y. ");
}

TEST(PyText, BracketRegexIsLazyAndStopsAtNewline) {
  EXPECT_EQ(remove_bracket_tags("[a] x [b] y"), " x  y");
  EXPECT_EQ(remove_bracket_tags("[a [b] c]"), " c]");    // shortest match from the first '['
  EXPECT_EQ(remove_bracket_tags("[a\nb] c [d]"), "[a\nb] c ");
  EXPECT_EQ(remove_bracket_tags("x [] y"), "x  y");
  EXPECT_EQ(remove_bracket_tags("unclosed [tag"), "unclosed [tag");
}

TEST(HellaswagPreprocess, ProtocolExamples) {
  // ActivityNet row of the protocol doc: "he" is capitalised.
  EXPECT_EQ(hellaswag_context("Roof shingle removal", "A man is sitting on a roof.", "he"),
            "Roof shingle removal: A man is sitting on a roof. He");
  EXPECT_EQ(hellaswag_preprocess("is using wrap to wrap a pair of skis."), "is using wrap to wrap a pair of skis.");
  // WikiHow: [header] vanishes, " [title]" becomes ". ", [step] vanishes, double spaces collapse once.
  EXPECT_EQ(hellaswag_context("Youth", "[header] How to make up after a fight [title] Blame technology. [step] One of the", ""),
            "Youth: How to make up after a fight. Blame technology. One of the");
  // An ending that starts with a tag keeps a leading space: strip() ran before the tag was removed.
  EXPECT_EQ(hellaswag_preprocess("[substeps] Replace the cloth when it is dirty."), " Replace the cloth when it is dirty.");
  EXPECT_EQ(hellaswag_preprocess("  [step] Rinse.  "), " Rinse.");
  // ctx_b is lower-cased after its first letter (Python str.capitalize).
  EXPECT_EQ(hellaswag_context("Kite flying", "A boy holds a kite.", "the BOY"), "Kite flying: A boy holds a kite. The boy");
  // "[title]" without the space before it is removed as a tag, not replaced.
  EXPECT_EQ(hellaswag_preprocess("[title]Start here"), "Start here");
  EXPECT_EQ(hellaswag_preprocess("end [title] x"), "end. x");
}
