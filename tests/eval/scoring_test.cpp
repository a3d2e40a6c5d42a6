// Loglikelihood scoring against a direct computation on a tiny model, truncation, batching invariance,
// evaluate_task end to end, validation loss, token sources, routing analytics.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

#include "eval/eval_test_util.h"
#include "test_util.h"
#include "gqe/attention/router.h"
#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/data/shard.h"
#include "gqe/eval/harness.h"
#include "gqe/eval/requests.h"
#include "gqe/eval/routing.h"
#include "gqe/eval/scoring.h"
#include "gqe/eval/val_loss.h"

using namespace gqe;
using namespace gqe::eval;
using namespace gqe::eval::testing;
using gqe::test::scratch_dir;

namespace {

ModelConfig tiny_config(const std::string& kind) {
  ModelConfig c = test::small_config(kind, 4, 2);  // byte vocabulary, d 32, d_h 8
  c.vocab_size = 256;
  c.intermediate_size = 64;
  c.max_position_embeddings = 128;
  return c;
}

// A model with non-trivial outputs: larger embeddings than the default init, and (GQE) random routers,
// so that log-probabilities differ by position and experts are actually chosen differently.
std::shared_ptr<LanguageModel> tiny_model(const std::string& kind, uint64_t seed = 3) {
  at::manual_seed(seed);
  auto m = std::make_shared<LanguageModel>(tiny_config(kind));
  torch::NoGradGuard g;
  m->embed_tokens->weight.normal_(0.0, 0.5);
  for (auto& l : m->gqe_layers()) l->router->weight.normal_(0.0, 1.0);
  return m;
}

// Sum of log_softmax(logits)[pos, target] over the continuation positions, computed here from one
// forward pass of the whole (untruncated) sequence.
double direct_loglik(LanguageModel& model, const EncodedPair& e) {
  std::vector<int64_t> all = e.context;
  all.insert(all.end(), e.continuation.begin(), e.continuation.end());
  std::vector<int64_t> input(all.begin(), all.end() - 1);
  torch::NoGradGuard g;
  at::Tensor lp = at::log_softmax(model.forward(at::tensor(input, at::kLong).unsqueeze(0)).logits[0].to(at::kDouble), -1);
  double s = 0;
  const size_t first = e.context.size() - 1;  // logits at position i predict token i+1
  for (size_t j = 0; j < e.continuation.size(); ++j) s += lp[int64_t(first + j)][e.continuation[j]].item<double>();
  return s;
}

std::vector<EncodedPair> some_requests() {
  ByteTokenizer tok;
  return {encode_pair(tok, "Question: To open a jar,\nAnswer:", " twist the lid."),
          encode_pair(tok, "Question: To open a jar,\nAnswer:", " bite the glass lid until it breaks."),
          encode_pair(tok, "Kite flying: A boy holds a kite. The boy", " runs."),
          encode_pair(tok, "A", " b"),
          encode_pair(tok, "Short", "  two spaces")};
}

}  // namespace

TEST(Scoring, BatchedLoglikelihoodEqualsTheDirectSum) {
  for (const char* kind : {"gqe", "gqa"}) {
    auto model = tiny_model(kind);
    const auto reqs = some_requests();
    for (int64_t bs : {1, 2, 5}) {
      ScoreOptions opt;
      opt.batch_size = bs;
      const auto got = score_loglikelihoods(*model, reqs, opt);
      ASSERT_EQ(got.size(), reqs.size());
      for (size_t i = 0; i < reqs.size(); ++i) {
        const double want = direct_loglik(*model, reqs[i]);
        EXPECT_NEAR(got[i].logprob, want, 2e-4 * std::max(1.0, std::fabs(want))) << kind << " bs " << bs << " req " << i;
        EXPECT_LT(got[i].logprob, 0.0);
        EXPECT_FALSE(got[i].truncated);
        EXPECT_EQ(got[i].input_len, int64_t(reqs[i].context.size() + reqs[i].continuation.size() - 1));
      }
    }
    // The reference path agrees too, including the greedy flag.
    for (const auto& r : reqs) {
      const Loglikelihood ref = score_one_reference(*model, r, 0);
      ScoreOptions opt;
      const Loglikelihood b = score_loglikelihoods(*model, {r}, opt)[0];
      EXPECT_NEAR(b.logprob, ref.logprob, 2e-4 * std::max(1.0, std::fabs(ref.logprob)));
      EXPECT_EQ(b.greedy, ref.greedy);
    }
  }
}

// Each doc's context run once and its K/V cache shared by the continuations gives the per-request scores:
// docs of equal and of different context lengths prefilled together (right-padded, continuations of unequal
// lengths against the ragged cache), a doc whose requests differ in context (winogrande's kind) and a
// truncated one going the per-request way, single-token continuations, every batch size.
TEST(Scoring, SharedContextsEqualPerRequestScores) {
  ByteTokenizer tok;
  const std::string long_ctx(70, 'x');
  std::vector<EncodedPair> reqs = {
      encode_pair(tok, "Question: To open a jar,\nAnswer:", " twist the lid."),      // doc 0
      encode_pair(tok, "Question: To open a jar,\nAnswer:", " bite the glass lid."),  // doc 0
      encode_pair(tok, "Question: To open a tin,\nAnswer:", " use an opener."),       // doc 1: same length as doc 0
      encode_pair(tok, "Question: To open a tin,\nAnswer:", " A"),                    // doc 1
      encode_pair(tok, "The cup fell, so the cup", " broke."),                        // doc 2: contexts differ
      encode_pair(tok, "The cup fell, so the table", " broke."),                      // doc 2
      encode_pair(tok, long_ctx, " cut from the left"),                               // doc 3: truncated at 64
      encode_pair(tok, long_ctx, " too"),                                             // doc 3
      encode_pair(tok, "A", " b"),                                                    // doc 4
      encode_pair(tok, "A", "c"),                                                     // doc 4: one token
      encode_pair(tok, "Q: Which is heavier?\nA:", " lead"),                          // doc 5: another length
      encode_pair(tok, "Q: Which is heavier?\nA:", " a feather, surely not"),         // doc 5
      encode_pair(tok, "Q: Which is heavier?\nA:", " x")};                            // doc 5
  const std::vector<int64_t> group = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5};
  for (const char* kind : {"gqe", "gqa"}) {
    auto model = tiny_model(kind);
    for (int64_t bs : {1, 3, 16}) {
      ScoreOptions opt;
      opt.batch_size = bs;
      opt.max_length = 64;
      const auto want = score_loglikelihoods(*model, reqs, opt);
      int64_t last_done = 0;
      const auto got = score_shared_contexts(*model, reqs, group, opt, [&](int64_t d, int64_t t) {
        EXPECT_EQ(t, int64_t(reqs.size()));
        EXPECT_GE(d, last_done);
        last_done = d;
      });
      EXPECT_EQ(last_done, int64_t(reqs.size()));
      ASSERT_EQ(got.size(), reqs.size());
      for (size_t i = 0; i < reqs.size(); ++i) {
        EXPECT_NEAR(got[i].logprob, want[i].logprob, 1e-5 * std::max(1.0, std::fabs(want[i].logprob)))
            << kind << " bs " << bs << " req " << i;
        EXPECT_EQ(got[i].greedy, want[i].greedy) << kind << " req " << i;
        EXPECT_EQ(got[i].truncated, want[i].truncated) << kind << " req " << i;
        EXPECT_EQ(got[i].input_len, want[i].input_len) << kind << " req " << i;
      }
    }
  }
}

TEST(Scoring, GreedyFlagMatchesArgmax) {
  auto model = tiny_model("gqe");
  ByteTokenizer tok;
  EncodedPair e = encode_pair(tok, "abcdef", " g");
  // Replace the continuation by the model's own argmax at the last context position: greedy is true.
  torch::NoGradGuard g;
  at::Tensor logits = model->forward(at::tensor(e.context, at::kLong).unsqueeze(0)).logits[0];
  e.continuation = {logits[int64_t(e.context.size()) - 1].argmax().item<int64_t>()};
  EXPECT_TRUE(score_loglikelihoods(*model, {e}, ScoreOptions{})[0].greedy);
  e.continuation = {(e.continuation[0] + 1) % 256};
  EXPECT_FALSE(score_loglikelihoods(*model, {e}, ScoreOptions{})[0].greedy);
}

TEST(Scoring, TruncatesFromTheLeftToMaxLength) {
  auto model = tiny_model("gqe");
  ByteTokenizer tok;
  const std::string long_ctx = "The quick brown fox jumps over the lazy dog near the river bank";  // 63 bytes
  const EncodedPair e = encode_pair(tok, long_ctx, " again");
  ScoreOptions opt;
  opt.max_length = 20;
  const Loglikelihood r = score_loglikelihoods(*model, {e}, opt)[0];
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.input_len, 20);
  // Same as scoring the last 21 tokens as a fresh request: (ctx + cont)[-(max_length+1):].
  std::vector<int64_t> all = e.context;
  all.insert(all.end(), e.continuation.begin(), e.continuation.end());
  EncodedPair cut;
  cut.context.assign(all.end() - 21, all.end() - int64_t(e.continuation.size()));
  cut.continuation = e.continuation;
  EXPECT_NEAR(r.logprob, direct_loglik(*model, cut), 2e-4 * std::fabs(r.logprob));
  // A continuation longer than max_length cannot be scored.
  opt.max_length = 4;
  EXPECT_THROW(score_loglikelihoods(*model, {e}, opt), Error);
}

TEST(Scoring, RejectsTokensOutsideTheVocabulary) {
  auto model = tiny_model("gqa");
  EncodedPair e{{1, 2}, {300}};
  const std::string msg = error_of([&] { score_loglikelihoods(*model, {e}, ScoreOptions{}); });
  EXPECT_NE(msg.find("token id 300 is outside the model's vocabulary of 256"), std::string::npos) << msg;
}

TEST(Harness, UnscorableRequestNamesTaskFileAndDoc) {
  auto model = tiny_model("gqa");
  TaskData t;
  t.info = task_info("arc_easy");
  t.source = "data/ARC-Easy-Test.jsonl";
  for (int i = 0; i < 3; ++i) {
    McDoc d;
    d.line = 10 + i;
    d.id = "Mercury_" + std::to_string(i);
    d.context = question_answer_context("Which one?");
    // Doc 1's second choice is longer than the model's 128 positions.
    d.choices = {"short", i == 1 ? std::string(200, 'z') : "also short"};
    d.gold = 0;
    t.docs.push_back(d);
  }
  ByteTokenizer tok;
  const std::string msg = error_of([&] { evaluate_task(*model, tok, t, EvalOptions{}); });
  EXPECT_NE(msg.find("arc_easy: data/ARC-Easy-Test.jsonl:11: doc Mercury_1, choice 1: a continuation of 201 tokens "
                     "exceeds the max length 128"),
            std::string::npos)
      << msg;
}

TEST(Harness, EvaluateTaskMatchesPerRequestScores) {
  auto model = tiny_model("gqe");
  TaskData t;
  t.info = task_info("piqa");
  for (int i = 0; i < 6; ++i) {
    McDoc d;
    d.line = i + 1;
    d.id = std::to_string(i);
    d.context = question_answer_context("How do I do thing number " + std::to_string(i) + "?");
    d.choices = {"Use a spoon" + std::string(size_t(i), '!'), "x"};
    d.gold = i % 2;
    t.docs.push_back(d);
  }
  ByteTokenizer tok;
  EvalOptions opt;
  opt.score.batch_size = 3;
  opt.limit = 5;
  std::ostringstream dump;
  opt.dump = &dump;
  const TaskEvaluation ev = evaluate_task(*model, tok, t, opt);
  EXPECT_EQ(ev.original_docs, 6);
  EXPECT_EQ(ev.result.n, 5);
  EXPECT_EQ(ev.requests, 10);
  double acc = 0, acc_norm = 0;
  for (int i = 0; i < 5; ++i) {
    const McDoc& d = t.docs[size_t(i)];
    std::vector<double> ll, norm;
    for (const auto& c : d.choices) {
      ll.push_back(direct_loglik(*model, encode_pair(tok, d.context, " " + c)));
      norm.push_back(ll.back() / double(c.size()));
    }
    acc += argmax_first(ll) == d.gold;
    acc_norm += argmax_first(norm) == d.gold;
  }
  EXPECT_DOUBLE_EQ(ev.result.acc.mean, acc / 5);
  EXPECT_DOUBLE_EQ(ev.result.acc_norm.mean, acc_norm / 5);
  // One dump line per request.
  const std::string s = dump.str();
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 10);
  EXPECT_NE(s.find(R"("continuation":" Use a spoon!!")"), std::string::npos);
}

TEST(ValLoss, EqualsCrossEntropyOverNonOverlappingWindows) {
  auto model = tiny_model("gqe");
  std::vector<int64_t> tokens;
  for (int i = 0; i < 50; ++i) tokens.push_back((i * 37 + 11) % 256);
  const auto w = eval_windows(50, 16);
  ASSERT_EQ(w.size(), 4u);  // 16 + 16 + 16 + 1 predicted tokens = 49
  EXPECT_EQ(w[3], (std::pair<int64_t, int64_t>{48, 1}));
  const ValLossResult r = validation_loss(*model, tokens, 16, 2, 100);
  EXPECT_EQ(r.predicted_tokens, 49);
  double nats = 0;
  torch::NoGradGuard g;
  ASSERT_EQ(r.window_nats.size(), w.size());
  ASSERT_EQ(r.window_tokens, (std::vector<int64_t>{16, 16, 16, 1}));
  for (size_t k = 0; k < w.size(); ++k) {
    const auto [s, n] = w[k];
    std::vector<int64_t> x(tokens.begin() + s, tokens.begin() + s + n), y(tokens.begin() + s + 1, tokens.begin() + s + n + 1);
    at::Tensor lp = at::log_softmax(model->forward(at::tensor(x, at::kLong).unsqueeze(0)).logits[0].to(at::kDouble), -1);
    double window = 0;
    for (int64_t i = 0; i < n; ++i) window -= lp[i][y[size_t(i)]].item<double>();
    EXPECT_NEAR(r.window_nats[k], window, 1e-3) << "window " << k;  // each window's own sum, in order
    nats += window;
  }
  EXPECT_NEAR(r.loss, nats / 49, 1e-4);
  EXPECT_NEAR(std::log(r.perplexity), nats / 49, 1e-4);
  EXPECT_NEAR(r.bits_per_byte, nats / std::log(2.0) / 100, 1e-4);
  EXPECT_GT(r.aux_loss, 0.0);
}

TEST(ValLoss, EvalTokensFromShardsAndText) {
  const std::string dir = scratch_dir("eval/tokens");
  ByteTokenizer tok;
  // llm.c uint16 shard: 256 int32 header (magic, version, count), then the tokens.
  std::string bin(1024, '\0');
  const int32_t header[3] = {20240520, 1, 3};
  std::memcpy(&bin[0], header, sizeof(header));
  for (uint16_t t : {uint16_t(5), uint16_t(300), uint16_t(65535)}) bin.append(reinterpret_cast<const char*>(&t), 2);
  write(dir + "/val.bin", bin);
  EvalTokens s = load_eval_tokens(dir + "/val.bin", tok);
  EXPECT_EQ(s.kind, "llm.c uint16 shard");
  EXPECT_EQ(s.tokens, (std::vector<int64_t>{5, 300, 65535}));
  EXPECT_EQ(load_eval_tokens(dir + "/val.bin", tok, 2).tokens.size(), 2u);
  write(dir + "/short.bin", bin.substr(0, bin.size() - 1));
  const std::string msg = error_of([&] { load_eval_tokens(dir + "/short.bin", tok); });
  EXPECT_NE(msg.find("short.bin: truncated"), std::string::npos) << msg;
  // gqe shard (data/shard.h).
  write_token_shard(dir + "/val.tok", {1, 2, 3, 4}, TokenDtype::kUInt16, 256);
  s = load_eval_tokens(dir + "/val.tok", tok);
  EXPECT_EQ(s.kind, "gqe uint16 shard");
  EXPECT_EQ(s.tokens, (std::vector<int64_t>{1, 2, 3, 4}));
  // Text: bytes.
  s = load_eval_tokens(write(dir + "/val.txt", "hello"), tok);
  EXPECT_EQ(s.kind, "text");
  EXPECT_EQ(s.tokens, (std::vector<int64_t>{'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(s.text_bytes, 5);
  EXPECT_THROW(load_eval_tokens(write(dir + "/one.txt", "x"), tok), FormatError);
}

TEST(Routing, StatisticsAreConsistentWithTheRouter) {
  auto model = tiny_model("gqe");
  std::vector<int64_t> tokens;
  for (int i = 0; i < 48; ++i) tokens.push_back("the cat sat on the mat. "[i % 24]);
  RouteOptions opt;
  opt.seq_len = 48;  // one window: the whole-set aux equals the router's loss on this forward pass
  opt.min_count = 2;
  const RouteStats s = collect_routing(*model, tokens, opt);
  ASSERT_EQ(s.layers, 2);
  ASSERT_EQ(s.groups, 2);
  ASSERT_EQ(s.experts, 2);
  EXPECT_EQ(s.tokens, 48);
  for (int64_t lg = 0; lg < 4; ++lg) {
    EXPECT_NEAR(s.load[size_t(lg * 2)] + s.load[size_t(lg * 2 + 1)], 1.0, 1e-12);
    EXPECT_GE(s.entropy[size_t(lg)], 0.0);
    EXPECT_LE(s.entropy[size_t(lg)], std::log(2.0) + 1e-12);
  }
  const auto layers = model->gqe_layers();
  for (int64_t l = 0; l < 2; ++l) {
    Routing r;
    r.probs = layers[size_t(l)]->last_router_probs;
    r.selected = layers[size_t(l)]->last_selected;
    const double want = load_balancing_loss(r).item<double>();
    EXPECT_NEAR((s.aux[size_t(l * 2)] + s.aux[size_t(l * 2 + 1)]) / 2, want, 1e-5);
    // Load of expert 0 in group 0 counted directly.
    const double f = layers[size_t(l)]->last_selected.select(-2, 0).eq(0).to(at::kDouble).mean().item<double>();
    EXPECT_NEAR(s.load[size_t(l * 4)], f, 1e-12);
    for (int64_t g = 0; g < 2; ++g) EXPECT_DOUBLE_EQ(s.agreement[size_t((l * 2 + l) * 2 + g)], 1.0);
  }
  // Preferred tokens: shares in (0, 1], sorted, only tokens seen >= min_count times.
  for (const auto& list : s.preferred)
    for (size_t i = 0; i < list.size(); ++i) {
      EXPECT_GT(list[i].share, 0.0);
      EXPECT_LE(list[i].share, 1.0);
      if (i) EXPECT_GE(list[i - 1].share, list[i].share);
    }
  ByteTokenizer tok;
  const std::string text = format_routing(s, tok);
  EXPECT_NE(text.find("L1 g1 e1:"), std::string::npos) << text;
  EXPECT_EQ(routing_json(s, tok)["per_layer"].size(), 2u);
  EXPECT_EQ(printable_token(tok, '\n'), "'\\n'");
  EXPECT_EQ(printable_token(tok, 0xC3), "'\\xc3'");
}

// The dumped choices are in data order across batched windows and a shorter last window: each window routed
// on its own gives the same top-1 experts.
TEST(Routing, KeptChoicesAreEachPositionsTopOneInDataOrder) {
  auto model = tiny_model("gqe");
  std::vector<int64_t> tokens(53);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int64_t(i * 37 % 256);
  RouteOptions opt;
  opt.seq_len = 10;
  opt.batch_size = 2;
  opt.keep_choices = true;
  const RouteStats s = collect_routing(*model, tokens, opt);
  ASSERT_EQ(s.top1_choice.size(), size_t(53 * 2 * 2));  // [N, L, G]
  const auto layers = model->gqe_layers();
  for (int64_t start = 0; start < 53; start += 10) {
    const int64_t n = std::min<int64_t>(10, 53 - start);
    RouteOptions one;
    one.seq_len = n;
    collect_routing(*model, std::vector<int64_t>(tokens.begin() + start, tokens.begin() + start + n), one);
    for (int64_t l = 0; l < 2; ++l) {
      const at::Tensor first = layers[size_t(l)]->last_selected.select(-1, 0).reshape({n, 2});  // [T, G]
      for (int64_t t = 0; t < n; ++t)
        for (int64_t g = 0; g < 2; ++g)
          EXPECT_EQ(int64_t(s.top1_choice[size_t(((start + t) * 2 + l) * 2 + g)]), first[t][g].item<int64_t>())
              << "position " << start + t << " layer " << l << " group " << g;
    }
  }
  RouteOptions plain = opt;
  plain.keep_choices = false;
  EXPECT_TRUE(collect_routing(*model, tokens, plain).top1_choice.empty());
}

TEST(Routing, GqaModelIsAnError) {
  auto model = tiny_model("gqa");
  const std::string msg = error_of([&] { collect_routing(*model, {1, 2, 3}, RouteOptions{}); });
  EXPECT_NE(msg.find("routing analytics need a GQE checkpoint"), std::string::npos) << msg;
}

TEST(Routing, HeatMapIsAPng) {
  if (!test::have_program("gnuplot")) GTEST_SKIP() << "gnuplot not installed";
  auto model = tiny_model("gqe");
  std::vector<int64_t> tokens(40);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int64_t(i * 7 % 256);
  RouteOptions opt;
  opt.seq_len = 20;
  const RouteStats s = collect_routing(*model, tokens, opt);
  const std::string png = scratch_dir("eval/heat") + "/routes.png";
  ASSERT_TRUE(plot_routing_heatmap(s, png, "test \"title\"", PlotNeed::kRequired));
  const std::string bytes = fs::read_file(png);
  ASSERT_GT(bytes.size(), 100u);
  EXPECT_EQ(bytes.substr(0, 8), "\x89PNG\r\n\x1a\n");
}
