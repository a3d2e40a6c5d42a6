// The training loop: exact resume, non-finite steps skipped without touching the weights, and
// checkpoints that survive a kill -9 in the middle of a write.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <random>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/data/shard.h"
#include "gqe/distributed/communicator.h"
#include "gqe/io/checkpoint.h"
#include "gqe/io/safetensors.h"
#include "gqe/train/train_checkpoint.h"
#include "gqe/train/trainer.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {

namespace {

// A learnable stream: a noisy repeating pattern over a 61-token vocabulary.
std::shared_ptr<const std::vector<int64_t>> pattern_tokens(int64_t n) {
  auto v = std::make_shared<std::vector<int64_t>>();
  std::mt19937_64 rng(5);
  for (int64_t i = 0; i < n; ++i) v->push_back(rng() % 10 == 0 ? int64_t(rng() % 61) : (i * 7) % 61);
  return v;
}

TrainRecipe tiny_recipe(int64_t steps) {
  TrainRecipe r;
  r.seq_len = 16;
  r.micro_batch = 2;
  r.global_batch_tokens = 2 * 16 * 2;  // accumulation 2
  r.schedule.total_steps = steps;
  r.schedule.peak_lr = 1e-2;
  r.schedule.min_lr = 1e-3;
  r.zclip.warmup_steps = 3;  // so that ZClip's EMA phase is inside the test
  r.eval_every = 0;
  r.eval_batches = 2;
  resolve_recipe(r, 1, "test");
  return r;
}

std::vector<at::Tensor> weights(LanguageModel& m) {
  std::vector<at::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

}  // namespace

using SourceFactory = std::function<std::unique_ptr<TokenSource>()>;

// N steps straight == N/2 steps, checkpoint, brand-new model/source/trainer objects, resume, N/2 steps.
void check_resume_is_bit_exact(const SourceFactory& make_source, const std::string& name) {
  const int64_t N = 8;
  auto cfg = test::small_config("gqe", 4, 2);
  auto comm = make_local_communicator();

  at::manual_seed(11);
  LanguageModel straight(cfg);
  auto src_a = make_source();
  Trainer ta(straight, tiny_recipe(N), *src_a, nullptr, *comm, {});
  TrainResult ra = ta.run();
  ASSERT_EQ(ra.losses.size(), size_t(N));

  const std::string dir = test::scratch_dir(name);
  std::vector<double> first;
  {
    at::manual_seed(11);
    LanguageModel m(cfg);
    auto src = make_source();
    Trainer t(m, tiny_recipe(N), *src, nullptr, *comm, {dir, nullptr});
    first = t.run(N / 2).losses;
  }
  at::manual_seed(999);  // a different initialisation: resume must overwrite everything
  LanguageModel m2(cfg);
  auto src2 = make_source();
  Trainer t2(m2, tiny_recipe(N), *src2, nullptr, *comm, {dir, nullptr});
  t2.resume(dir);
  EXPECT_EQ(t2.step(), N / 2);
  TrainResult rb = t2.run();
  ASSERT_EQ(first.size() + rb.losses.size(), size_t(N));
  for (int64_t i = 0; i < N; ++i) {
    const double b = i < N / 2 ? first[size_t(i)] : rb.losses[size_t(i - N / 2)];
    EXPECT_EQ(ra.losses[size_t(i)], b) << "step " << i;  // bit-exact, not approximately
  }
  auto wa = weights(straight), wb = weights(m2);
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_TRUE(at::equal(wa[i], wb[i])) << "parameter " << i;
  EXPECT_LT(ra.losses.back(), ra.losses.front());  // and it learns
  // The run directory holds a loadable model checkpoint for `gqe generate` too.
  auto loaded = load_model_checkpoint(dir);
  EXPECT_EQ(loaded->config().attention.kind, AttentionKind::gqe);
}

TEST(Trainer, DecideSkipOnNonFiniteValuesAndSpikes) {
  LossSpikeDetector spikes(6.0, 0.97, 5);
  const double nan = std::nan("");
  EXPECT_EQ(decide_skip(nan, 1.0, 1.0, 6.0, spikes).reason, "non-finite loss or gradient");
  EXPECT_TRUE(decide_skip(2.0, INFINITY, 1.0, 6.0, spikes).skip);
  EXPECT_TRUE(decide_skip(2.0, 1.0, nan, 6.0, spikes).skip);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(decide_skip(2.0 + 0.01 * (i % 3), 1.0, 1.0, 6.0, spikes).skip);
  const SkipDecision spike = decide_skip(50.0, 1.0, 1.0, 6.0, spikes);
  EXPECT_TRUE(spike.skip);
  EXPECT_EQ(spike.reason, "loss spike");
  LossSpikeDetector off;
  EXPECT_FALSE(decide_skip(50.0, 1.0, 1.0, /*spike_z=*/0, off).skip);  // spike detection off
}

TEST(Trainer, ResumeIsBitExact) {
  auto toks = pattern_tokens(4000);
  check_resume_is_bit_exact([&] { return std::make_unique<TextTokenSource>(toks, 16, 2, 9); }, "train_resume");
}

TEST(Trainer, ResumeIsBitExactOnTokenShards) {
  const std::string dir = test::scratch_dir("train_resume_shards_data");
  auto toks = pattern_tokens(4000);
  write_token_shard(dir + "/a.tok", std::vector<int64_t>(toks->begin(), toks->begin() + 2500), TokenDtype::kUInt16, 61);
  write_token_shard(dir + "/b.tok", std::vector<int64_t>(toks->begin() + 2500, toks->end()), TokenDtype::kUInt16, 61);
  auto paths = resolve_shard_paths(dir + "/*.tok");
  ASSERT_EQ(paths.size(), 2u);
  auto src = make_shard_source(paths, 16, 2, 9, 0, 1);
  EXPECT_EQ(src->vocab_size(), 61);
  check_resume_is_bit_exact([&] { return make_shard_source(paths, 16, 2, 9, 0, 1); }, "train_resume_shards");
}

TEST(Trainer, NonFiniteGradientSkipsTheStepAndLeavesWeightsAlone) {
  auto toks = pattern_tokens(4000);
  auto cfg = test::small_config("gqe", 4, 2);
  auto comm = make_local_communicator();
  at::manual_seed(1);
  LanguageModel m(cfg);
  TextTokenSource src(toks, 16, 2, 3);
  TrainRecipe r = tiny_recipe(6);
  Trainer t(m, r, src, nullptr, *comm, {});
  t.run(2);
  auto before = weights(m);
  // Poison one gradient for the next step only.
  at::Tensor w = m.layers[0]->mlp->named_parameters().begin()->value();
  const unsigned hook = w.register_hook([](const at::Tensor& g) { return g * std::nan(""); });
  TrainResult bad = t.run(3);
  w.remove_hook(hook);
  ASSERT_EQ(bad.skipped.size(), 1u);
  EXPECT_TRUE(bad.skipped[0]);
  EXPECT_FALSE(std::isfinite(bad.grad_norms[0]));
  auto after = weights(m);
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(at::equal(before[i], after[i]));
  EXPECT_EQ(t.optimizer().steps_taken(), 2);
  TrainResult good = t.run(4);
  EXPECT_FALSE(good.skipped[0]);
  EXPECT_EQ(t.optimizer().steps_taken(), 3);
  EXPECT_EQ(t.step(), 4);
}

TEST(Trainer, ResumeRejectsADifferentBatchLayout) {
  auto toks = pattern_tokens(4000);
  auto cfg = test::small_config("gqa", 4, 2);
  auto comm = make_local_communicator();
  const std::string dir = test::scratch_dir("train_layout");
  {
    LanguageModel m(cfg);
    TextTokenSource src(toks, 16, 2, 3);
    Trainer t(m, tiny_recipe(4), src, nullptr, *comm, {dir, nullptr});
    t.run(2);
  }
  LanguageModel m(cfg);
  TrainRecipe r = tiny_recipe(4);
  r.micro_batch = 4;
  r.global_batch_tokens = 4 * 16 * 2;
  TextTokenSource src(toks, 16, 4, 3);
  Trainer t(m, r, src, nullptr, *comm, {dir, nullptr});
  EXPECT_THROW(t.resume(dir), Error);
}

// Found by fuzz/train_state_fuzz: a damaged generator state "rng/cpu" escaped resume as a c10::Error.
TEST(Trainer, ResumeRejectsADamagedGeneratorState) {
  auto toks = pattern_tokens(4000);
  auto cfg = test::small_config("gqa", 4, 2);
  auto comm = make_local_communicator();
  const std::string dir = test::scratch_dir("train_bad_rng");
  {
    LanguageModel m(cfg);
    TextTokenSource src(toks, 16, 2, 3);
    Trainer t(m, tiny_recipe(4), src, nullptr, *comm, {dir, nullptr});
    t.run(2);
  }
  const std::string opt_path = find_train_checkpoint(dir) + "/optimizer.safetensors";
  const SafetensorsFile opt = load_safetensors(opt_path);
  ASSERT_NE(opt.find("rng/cpu"), nullptr);
  // Wrong size; right size but not an mt19937 state.
  for (const at::Tensor& bad : {at::zeros({7}, at::kByte), at::zeros_like(*opt.find("rng/cpu"))}) {
    auto tensors = opt.tensors;
    for (auto& [name, t] : tensors)
      if (name == "rng/cpu") t = bad;
    save_safetensors(opt_path, tensors, opt.metadata);
    LanguageModel m(cfg);
    TextTokenSource src(toks, 16, 2, 3);
    Trainer t(m, tiny_recipe(4), src, nullptr, *comm, {});
    try {
      t.resume(dir);
      ADD_FAILURE() << "resumed from a damaged generator state of " << bad.numel() << " bytes";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(opt_path + ": tensor 'rng/cpu' is not a CPU generator state"),
                std::string::npos)
          << e.what();
    }
  }
}

// Found by the kill -9 test (kill_resume_test.cpp): killed after the step-N training checkpoint but before
// the plain model of step N, a run resumed at step N trained nothing and kept the plain model of step N-1.
// The training checkpoint of a step is published only after that step's plain model is written.
TEST(Trainer, CheckpointIsPublishedAfterThePlainModel) {
  auto toks = pattern_tokens(4000);
  auto cfg = test::small_config("gqa", 4, 2);
  auto comm = make_local_communicator();
  const std::string dir = test::scratch_dir("train_plain_model_first");
  TrainRecipe r = tiny_recipe(4);
  r.save_every = 1;
  {
    LanguageModel m(cfg);
    TextTokenSource src(toks, 16, 2, 3);
    Trainer t(m, r, src, nullptr, *comm, {dir, nullptr});
    t.run(2);
  }
  // The plain model cannot be written (its name is taken by a non-empty directory).
  fs::remove_tree(dir + "/model.safetensors");
  fs::mkdirs(dir + "/model.safetensors/in-the-way");
  LanguageModel m(cfg);
  TextTokenSource src(toks, 16, 2, 3);
  Trainer t(m, r, src, nullptr, *comm, {dir, nullptr});
  t.resume(dir);
  EXPECT_THROW(t.run(3), Error);
  EXPECT_EQ(find_train_checkpoint(dir), dir + "/checkpoints/" + checkpoint_name(2));
}

// kill -9 while a checkpoint is being written: the previous checkpoint stays complete and loadable.
TEST(Trainer, KillDuringCheckpointWriteLeavesThePreviousOneLoadable) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("train_kill");
  {
    std::ofstream f(dir + "/text.txt");
    for (int i = 0; i < 400; ++i) f << "In the beginning God created the heaven and the earth. ";
  }
  auto cfg = test::small_config("gqe", 4, 2);
  cfg.vocab_size = 256;
  {
    std::ofstream f(dir + "/model.json");
    f << model_config_to_json(cfg);
  }
  // The third checkpoint write SIGKILLs itself after the weights and before the optimizer state.
  const test::Args train = {"train", "--config", dir + "/model.json", "--data", dir + "/text.txt", "--batch", "2",
                            "--seq", "16", "--save-every", "1", "--threads", "1", "--sample-tokens", "0",
                            "--eval-every", "0"};
  ASSERT_TRUE(test::exited(test::run_gqe(test::concat(train, {"--out", dir + "/run", "--steps", "6"}),
                                         test::RunOptions().with_env("GQE_TEST_KILL_IN_CHECKPOINT", "3")),
                           128 + SIGKILL));
  const std::string ck = find_train_checkpoint(dir + "/run");
  EXPECT_NE(ck.find("step-00000002"), std::string::npos) << ck;
  LanguageModel m(cfg);
  TrainCheckpoint c = read_train_checkpoint(ck, m);
  EXPECT_EQ(c.step, 2);
  EXPECT_FALSE(c.optimizer_tensors.empty());
  // And a real external kill -9 at an arbitrary moment of a run that checkpoints every step.
  const std::string run2 = dir + "/run2";
  const pid_t pid =
      test::spawn(test::concat({test::gqe_bin()}, test::concat(train, {"--out", run2, "--steps", "400"})), {},
                  dir + "/log2.txt");
  ASSERT_GE(pid, 0);
  // Wait for a first checkpoint, then kill at a moment unrelated to the writer's progress.
  for (int i = 0; i < 600 && access((run2 + "/checkpoints/latest").c_str(), F_OK) != 0; ++i) usleep(50000);
  usleep(137000);
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  const std::string ck2 = find_train_checkpoint(run2);
  LanguageModel m2(cfg);
  EXPECT_NO_THROW(read_train_checkpoint(ck2, m2)) << ck2;
}

}  // namespace gqe

namespace gqe {

// Across processes: `gqe train --stop-at 3` then `gqe train --resume auto` logs exactly the losses of
// one uninterrupted `gqe train` (the JSON log keeps doubles to the last bit).
TEST(Trainer, ResumeAcrossProcessesIsBitExact) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir =
      test::train_inputs_dir("train_resume_cli", 300, "And the evening and the morning were the ", " day.\n");
  auto gqe = [&](const std::string& out, const test::Args& extra) {
    return test::run_gqe(test::concat({"train", "--config", dir + "/model.json", "--data", dir + "/text.txt", "--out",
                                       dir + "/" + out, "--steps", "6", "--batch", "2", "--seq", "16", "--global-batch",
                                       "64", "--threads", "1", "--sample-tokens", "0", "--eval-every", "2", "--lr",
                                       "1e-2"},
                                      extra));
  };
  ASSERT_TRUE(test::exited(gqe("straight", {}), 0));
  ASSERT_TRUE(test::exited(gqe("split", {"--stop-at", "3"}), 0));
  ASSERT_TRUE(test::exited(gqe("split", {"--resume", "auto"}), 0));
  auto losses = [&](const std::string& run) {
    std::map<int64_t, std::string> by_step;  // the raw JSON number text, for a bit-exact comparison
    std::ifstream f(dir + "/" + run + "/metrics.jsonl");
    std::string line;
    while (std::getline(f, line)) {
      auto j = nlohmann::json::parse(line);
      by_step[j["step"].get<int64_t>() * 2 + (j["type"] == "val")] =
          j.contains("loss") ? j["loss"].dump() : j["val_loss"].dump();
    }
    return by_step;
  };
  auto a = losses("straight"), b = losses("split");
  ASSERT_EQ(b.erase(3 * 2 + 1), 1u);  // the interrupted run also validated where it stopped
  ASSERT_EQ(a.size(), 9u);  // 6 train records + validation at steps 2, 4, 6
  EXPECT_EQ(a, b);
}

}  // namespace gqe
