// `gqe eval` and `gqe routes` end to end through the executable ($GQE_BIN) on a freshly saved tiny
// checkpoint and fixture files in each task's format.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "eval/eval_test_util.h"
#include "process_util.h"
#include "test_util.h"
#include "gqe/core/fs.h"
#include "gqe/data/shard.h"
#include "gqe/io/checkpoint.h"

using namespace gqe;
using namespace gqe::eval::testing;
using gqe::test::scratch_dir;

namespace {

std::string make_checkpoint(const std::string& dir, const std::string& kind) {
  ModelConfig c = test::small_config(kind, 4, 2);  // byte vocabulary, d 32, d_h 8
  c.vocab_size = 256;
  c.intermediate_size = 64;
  c.max_position_embeddings = 128;
  at::manual_seed(5);
  LanguageModel m(c);
  {
    torch::NoGradGuard g;
    for (auto& l : m.gqe_layers()) l->router->weight.normal_(0.0, 1.0);
  }
  save_model_checkpoint(dir + "/ckpt_" + kind, m);
  return dir + "/ckpt_" + kind;
}

void write_fixtures(const std::string& dir) {
  write(dir + "/hellaswag_val.jsonl",
        R"({"ind": 1, "activity_label": "Kite flying", "ctx_a": "A boy holds a kite.", "ctx_b": "the boy", "label": 2, "endings": ["eats.", "paints it.", "runs and lets it rise.", "[substeps] sits."], "split": "val", "split_type": "indomain", "source_id": "s"})" "\n"
        R"({"ind": 2, "activity_label": "Cooking", "ctx_a": "[header] How to boil an egg [title] Fill a pot.", "ctx_b": "", "label": 0, "endings": ["[step] Put the egg in.", "Fly.", "Sing.", "Dance."], "split": "val", "split_type": "zeroshot", "source_id": "w"})" "\n"
        R"({"ind": 3, "activity_label": "Running", "ctx_a": "A woman runs.", "ctx_b": "she", "label": 1, "endings": ["sleeps.", "keeps running.", "melts.", "flies."], "split": "val", "split_type": "indomain", "source_id": "s"})" "\n");
  write(dir + "/ARC-Easy-Test.jsonl",
        R"({"id": "A1", "question": {"stem": "Which is a metal?", "choices": [{"text": "iron", "label": "A"}, {"text": "wood", "label": "B"}, {"text": "glass", "label": "C"}]}, "answerKey": "A"})" "\n"
        R"({"id": "A2", "question": {"stem": "What melts ice?", "choices": [{"text": "heat", "label": "1"}, {"text": "cold", "label": "2"}, {"text": "dark", "label": "3"}, {"text": "salt water", "label": "4"}, {"text": "wind", "label": "5"}]}, "answerKey": "1"})" "\n");
  write(dir + "/valid.jsonl", R"({"goal": "Open a jar", "sol1": "twist the lid", "sol2": "bite it"})" "\n"
                              R"({"goal": "Dry shoes", "sol1": "freeze them", "sol2": "use newspaper"})" "\n");
  write(dir + "/valid-labels.lst", "0\n1\n");
}

}  // namespace

TEST(Cli, EvalThreeTasksWritesJsonAndRequestDump) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = scratch_dir("eval/cli");
  const std::string ckpt = make_checkpoint(dir, "gqe");
  write_fixtures(dir);
  const test::CommandRun r =
      test::run_gqe({"eval", "--checkpoint", ckpt, "--task", "hellaswag,arc_easy,piqa", "--data-dir", dir, "--out",
                     dir + "/res.json", "--dump-requests", dir + "/req.jsonl", "--batch-size", "4", "--threads", "1"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("|hellaswag|"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("|piqa     |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Average of 3 tasks"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(fs::read_file(dir + "/res.json"));
  for (const char* t : {"hellaswag", "arc_easy", "piqa"}) {
    const double acc = j["results"][t]["acc,none"].get<double>();
    EXPECT_GE(acc, 0.0);
    EXPECT_LE(acc, 1.0);
    EXPECT_TRUE(j["results"][t]["acc_norm_stderr,none"].is_number());
  }
  EXPECT_EQ(j["n-samples"]["hellaswag"]["effective"], 3);
  EXPECT_EQ(j["checkpoint_sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(j["model_config"]["attention"]["kind"], "gqe");
  // 3 x 4 + (3 + 5) + 2 x 2 requests, in task then doc then choice order.
  const std::string dump = fs::read_file(dir + "/req.jsonl");
  EXPECT_EQ(std::count(dump.begin(), dump.end(), '\n'), 24);
  const auto first = nlohmann::json::parse(dump.substr(0, dump.find('\n')));
  EXPECT_EQ(first["context"], "Kite flying: A boy holds a kite. The boy");
  EXPECT_EQ(first["continuation"], " eats.");
  EXPECT_EQ(first["gold"], 2);
  EXPECT_NE(dump.find(R"("continuation":"  sits.")"), std::string::npos);
  // Each line carries its score; the best loglikelihood of each doc gives the reported acc.
  std::map<std::string, std::map<int64_t, std::pair<double, int64_t>>> best;  // task -> doc -> (ll, choice)
  std::map<std::string, std::map<int64_t, int64_t>> gold;
  size_t pos = 0;
  for (size_t nl; (nl = dump.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    const auto line = nlohmann::json::parse(dump.substr(pos, nl - pos));
    ASSERT_TRUE(line["loglikelihood"].is_number_float()) << line.dump();
    ASSERT_TRUE(line["is_greedy"].is_boolean()) << line.dump();
    const double ll = line["loglikelihood"];
    EXPECT_LT(ll, 0.0);
    auto& b = best[line["task"]].try_emplace(line["doc"].get<int64_t>(), ll, line["choice"].get<int64_t>()).first->second;
    if (ll > b.first) b = {ll, line["choice"].get<int64_t>()};
    gold[line["task"]][line["doc"].get<int64_t>()] = line["gold"];
  }
  for (const char* t : {"hellaswag", "arc_easy", "piqa"}) {
    double correct = 0;
    for (const auto& [doc, b] : best[t]) correct += b.second == gold[t][doc];
    EXPECT_DOUBLE_EQ(correct / double(best[t].size()), j["results"][t]["acc,none"].get<double>()) << t;
  }
}

TEST(Cli, MalformedFileFailsBeforeScoringWithFileAndLine) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = scratch_dir("eval/cli_bad");
  const std::string ckpt = make_checkpoint(dir, "gqa");
  write(dir + "/bad.jsonl", R"({"goal": "g", "sol1": "a", "sol2": "b"})" "\n{not json\n");
  write(dir + "/bad-labels.lst", "0\n1\n");
  const test::CommandRun r = test::run_gqe(
      {"eval", "--checkpoint", ckpt, "--task", "piqa", "--data", dir + "/bad.jsonl", "--out", dir + "/x.json"});
  EXPECT_TRUE(test::fails_with(r, dir + "/bad.jsonl:2: not valid JSON"));
}

TEST(Cli, ATaskNamedTwiceIsAnError) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = scratch_dir("eval/cli_twice");
  const std::string ckpt = make_checkpoint(dir, "gqa");
  const test::CommandRun r =
      test::run_gqe({"eval", "--checkpoint", ckpt, "--task", "piqa,arc_easy,piqa", "--data-dir", dir});
  EXPECT_TRUE(test::fails_with(r, "'piqa' is named twice"));
}

TEST(Cli, ValLossAndRoutes) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = scratch_dir("eval/cli_routes");
  const std::string ckpt = make_checkpoint(dir, "gqe");
  std::string text;
  for (int i = 0; i < 20; ++i) text += "In the beginning was the word. ";
  write(dir + "/val.txt", text);
  test::CommandRun r = test::run_gqe({"eval", "--val-loss", "--checkpoint", ckpt, "--data", dir + "/val.txt", "--seq",
                                      "64", "--out", dir + "/vl.json"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("perplexity"), std::string::npos) << r.out;
  const auto vl = nlohmann::json::parse(fs::read_file(dir + "/vl.json"));
  EXPECT_EQ(vl["predicted_tokens"], int64_t(text.size()) - 1);
  EXPECT_GT(vl["loss"].get<double>(), 0.0);

  const bool plot = test::have_program("gnuplot");
  r = test::run_gqe(test::concat(
      {"routes", "--checkpoint", ckpt, "--data", dir + "/val.txt", "--seq", "64", "--out", dir + "/routes"},
      plot ? test::Args{} : test::Args{"--no-plot"}));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("preferred tokens"), std::string::npos) << r.out;
  const auto rj = nlohmann::json::parse(fs::read_file(dir + "/routes.json"));
  EXPECT_EQ(rj["tokens"], int64_t(text.size()));
  if (plot) EXPECT_EQ(fs::read_file(dir + "/routes.png").substr(0, 4), "\x89PNG");

  const std::string gqa = make_checkpoint(dir, "gqa");
  r = test::run_gqe({"routes", "--checkpoint", gqa, "--data", dir + "/val.txt"});
  EXPECT_TRUE(test::fails_with(r, "need a GQE checkpoint"));
}

TEST(Cli, ShardPathWithDamagedMagicIsAnErrorNotText) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = scratch_dir("eval/cli_bad_magic");
  const std::string ckpt = make_checkpoint(dir, "gqe");
  std::vector<int64_t> tokens;
  for (int i = 0; i < 300; ++i) tokens.push_back(i % 200);
  write_token_shard(dir + "/val.tok", tokens, TokenDtype::kUInt16, 256);
  std::string bytes = fs::read_file(dir + "/val.tok");
  bytes[0] = 'X';  // "XQETOKS\0"
  write(dir + "/val.tok", bytes);
  // An llm.c-style .bin whose int32 magic is neither 20240520 nor 20240801.
  std::string bin(256 * 4 + 600, '\0');
  bin[0] = 7;
  write(dir + "/val.bin", bin);
  for (const std::string& data : {dir + "/val.tok", dir + "/val.bin"}) {
    test::CommandRun r = test::run_gqe(
        {"eval", "--val-loss", "--checkpoint", ckpt, "--data", data, "--seq", "64", "--out", dir + "/vl.json"});
    EXPECT_TRUE(test::fails_with(r, data + ": not a token shard"));
    r = test::run_gqe(
        {"routes", "--checkpoint", ckpt, "--data", data, "--seq", "64", "--no-plot", "--out", dir + "/routes"});
    EXPECT_TRUE(test::fails_with(r, data + ": not a token shard"));
  }
  EXPECT_FALSE(fs::exists(dir + "/vl.json"));
  EXPECT_FALSE(fs::exists(dir + "/routes.json"));
}
