// acc / acc_norm, stderr, --limit, tokenisation of requests, results table, SHA-256.
#include <gtest/gtest.h>

#include <cmath>

#include "gqe/core/error.h"
#include "gqe/eval/harness.h"
#include "gqe/eval/metrics.h"
#include "gqe/eval/requests.h"
#include "gqe/eval/text.h"

using namespace gqe::eval;

TEST(Metrics, AccAndAccNormDisagreeOnAConstructedCase) {
  // Choice 0 is short and likelier in total; choice 1 is long and likelier per character.
  DocScores d;
  d.lls = {-10.0, -12.0};
  d.char_lens = {2.0, 8.0};  // -5.0 vs -1.5 per character
  d.gold = 1;
  const DocMetrics m = score_doc(d);
  EXPECT_EQ(m.pred, 0);
  EXPECT_EQ(m.pred_norm, 1);
  EXPECT_EQ(m.acc, 0.0);
  EXPECT_EQ(m.acc_norm, 1.0);
}

TEST(Metrics, AccNormDividesByCharactersNotBytes) {
  // "\xC3\xA9\xC3\xA9" is 2 characters in 4 bytes. Per character: -3/2 = -1.5 vs -4/3 = -1.33 -> choice 1.
  // Per byte it would be -3/4 = -0.75 vs -1.33 -> choice 0.
  const std::vector<std::string> choices = {"\xC3\xA9\xC3\xA9", "abc"};
  DocScores d;
  d.lls = {-3.0, -4.0};
  for (const auto& c : choices) d.char_lens.push_back(double(py_len(c)));
  d.gold = 1;
  EXPECT_EQ(score_doc(d).pred_norm, 1);
}

TEST(Metrics, ArgmaxTakesTheFirstMaximumLikeNumpy) {
  EXPECT_EQ(argmax_first({-1.0, -0.5, -0.5}), 1);
  EXPECT_EQ(argmax_first({-1.0, NAN, 0.0}), 1);
}

TEST(Metrics, StderrIsSampleStdOverSqrtN) {
  const MeanStderr m = mean_stderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.mean, 0.75);
  // sample variance = (3 * 0.25^2 + 0.75^2) / 3 = 0.25 -> std 0.5 -> / sqrt(4) = 0.25
  ASSERT_TRUE(m.stderr_.has_value());
  EXPECT_DOUBLE_EQ(*m.stderr_, 0.25);
  const MeanStderr m5 = mean_stderr({1, 1, 0, 0, 0});
  EXPECT_NEAR(*m5.stderr_, std::sqrt(0.3) / std::sqrt(5.0), 1e-15);  // var = (2*.36 + 3*.16)/4 = 0.3
  EXPECT_FALSE(mean_stderr({1}).stderr_.has_value());                // the harness prints N/A
}

TEST(Metrics, LimitTakesFirstDocsOrAFraction) {
  EXPECT_EQ(resolve_limit(0, 25), 25);
  EXPECT_EQ(resolve_limit(5, 25), 5);
  EXPECT_EQ(resolve_limit(100, 25), 25);
  EXPECT_EQ(resolve_limit(0.1, 25), 3);  // ceil(2.5)
}

namespace {
// Bytes, plus one merged token 256 = "\nA": shows where the harness takes continuation tokens from.
class MergingTokenizer : public gqe::Tokenizer {
 public:
  std::vector<int64_t> encode(const std::string& s) const override {
    std::vector<int64_t> out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' && i + 1 < s.size() && s[i + 1] == 'A') {
        out.push_back(256);
        ++i;
      } else {
        out.push_back(static_cast<unsigned char>(s[i]));
      }
    }
    return out;
  }
  std::string decode(const std::vector<int64_t>&) const override { return ""; }
  int64_t vocab_size() const override { return 257; }
  std::string name() const override { return "merging"; }
};
}  // namespace

TEST(Requests, EncodePairMovesTrailingWhitespaceAndSplitsTheJointEncoding) {
  gqe::ByteTokenizer bytes;
  EncodedPair e = encode_pair(bytes, "Question: q\nAnswer:", " yes");
  EXPECT_EQ(e.context.size(), 19u);
  EXPECT_EQ(e.continuation, (std::vector<int64_t>{' ', 'y', 'e', 's'}));
  // A context ending in whitespace gives it to the continuation.
  e = encode_pair(bytes, "ctx \n", "x");
  EXPECT_EQ(e.context, (std::vector<int64_t>{'c', 't', 'x'}));
  EXPECT_EQ(e.continuation, (std::vector<int64_t>{' ', '\n', 'x'}));
  // With a merge across the boundary the continuation is the joint encoding's tail:
  // "Q\n" + "A" -> context "Q", whole "Q\nA" = [Q, 256], continuation [256].
  MergingTokenizer merging;
  e = encode_pair(merging, "Q\n", "A");
  EXPECT_EQ(e.context, (std::vector<int64_t>{'Q'}));
  EXPECT_EQ(e.continuation, (std::vector<int64_t>{256}));
  // An empty context conditions on the end-of-text token, or is an error without one.
  e = encode_pair(bytes, "", " a", 7);
  EXPECT_EQ(e.context, (std::vector<int64_t>{7}));
  EXPECT_THROW(encode_pair(bytes, "", " a", -1), gqe::Error);
}

TEST(Requests, DumpLineHasContextContinuationGold) {
  McDoc d;
  d.id = "42";
  d.line = 3;
  d.context = "Question: q\nAnswer:";
  d.choices = {"x", "y"};
  d.gold = 1;
  const auto reqs = build_requests({d});
  gqe::ByteTokenizer bytes;
  const std::string line = request_json("piqa", d, reqs[1], encode_pair(bytes, reqs[1].context, reqs[1].continuation));
  EXPECT_EQ(line,
            R"({"task":"piqa","doc":0,"doc_id":"42","line":3,"choice":1,"context":"Question: q\nAnswer:","continuation":" y","gold":1,"context_tokens":19,"continuation_tokens":2})");
  // With the score: the harness's (loglikelihood, is_greedy), the double printed to round-trip exactly.
  const RequestScore score{-0.1 - 1e-12, true};
  const std::string scored =
      request_json("piqa", d, reqs[1], encode_pair(bytes, reqs[1].context, reqs[1].continuation), &score);
  EXPECT_NE(scored.find(R"("continuation_tokens":2,"loglikelihood":-0.10000000000100001,"is_greedy":true})"), std::string::npos)
      << scored;
}

TEST(Report, HarnessStyleTable) {
  TaskResult r;
  r.task = "arc_easy";
  r.version = "1";
  r.n = 4;
  r.chance = 0.25;
  r.acc = mean_stderr({1, 0, 1, 1});
  r.acc_norm = mean_stderr({0, 0, 1, 1});
  const std::string t = results_table({r});
  EXPECT_NE(t.find("| Tasks  |Version|Filter|n-shot| Metric |   |Value |   |Stderr| n |Chance|"), std::string::npos) << t;
  EXPECT_NE(t.find("|--------|------:|------|-----:|--------|---|-----:|---|-----:|--:|-----:|"), std::string::npos) << t;
  EXPECT_NE(t.find("|arc_easy|      1|none  |     0|acc     |↑  |0.7500|±  |0.2500|  4|0.2500|"), std::string::npos) << t;
  EXPECT_NE(t.find("|        |       |none  |     0|acc_norm|↑  |0.5000|±  |0.2887|   |      |"), std::string::npos) << t;
}

TEST(Report, AccOnlyTasksHaveOneRowAndTheAverageSaysOverWhat) {
  TaskResult a, b;
  a.task = "arc_easy";
  a.n = 2;
  a.acc = mean_stderr({1, 0});
  a.acc_norm = mean_stderr({1, 1});
  b.task = "commonsense_qa";
  b.version = "Yaml";
  b.has_acc_norm = false;
  b.n = 2;
  b.chance = 0.2;
  b.acc = mean_stderr({0, 0});
  const std::string t = results_table({a, b});
  EXPECT_NE(t.find("|commonsense_qa|   Yaml|none  |     0|acc     |↑  |0.0000|±  |0.0000|  2|0.2000|"), std::string::npos) << t;
  EXPECT_EQ(t.find("acc_norm|↑  |0.0000"), std::string::npos) << t;
  EXPECT_NE(t.find("Average of 2 tasks"), std::string::npos) << t;
  EXPECT_NE(t.find("acc_norm (1 tasks)"), std::string::npos) << t;
  EXPECT_NE(t.find("0.2500|"), std::string::npos) << t;  // acc (0.5 + 0) / 2
  EXPECT_NE(t.find("1.0000|"), std::string::npos) << t;  // acc_norm over arc_easy alone
}

TEST(Metrics, PooledStderrIsTheHarnessFormula) {
  // lm_eval.api.metrics.pooled_sample_stderr([0.1, 0.2], [10, 30]) = sqrt((9*0.01*10 + 29*0.04*30)/38/40).
  EXPECT_NEAR(pooled_sample_stderr({0.1, 0.2}, {10, 30}), std::sqrt((9 * 0.01 * 10 + 29 * 0.04 * 30) / 38.0 / 40.0), 1e-15);
}

