// Resuming training (train/trainer.cpp Trainer::resume over train/train_checkpoint.cpp) from a damaged
// checkpoint directory. At start-up a tiny model trains 2 steps and saves a valid checkpoint: the
// template. An input holds up to three files separated by the line "--gqe-fuzz-next-file--":
// trainer_state.json, optimizer.safetensors, model.safetensors; files the input does not give are the
// template's, so each one is fuzzed with valid neighbours. A resume that succeeds is followed by one
// training step, which uses everything the state restored.
//
// GQE_FUZZ_WRITE_SEED=FILE: start-up also writes the template, in the input format, to FILE (the seed of
// fuzz/corpus/train_state/).
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "gqe/distributed/communicator.h"
#include "gqe/train/train_checkpoint.h"
#include "gqe/train/trainer.h"

namespace {

const std::string kSeparator = "\n--gqe-fuzz-next-file--\n";
const char* const kFiles[] = {"trainer_state.json", "optimizer.safetensors", "model.safetensors"};

gqe::ModelConfig tiny_config() {
  gqe::ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.num_hidden_layers = 1;
  c.intermediate_size = 16;
  c.max_position_embeddings = 64;
  c.attention.kind = gqe::AttentionKind::gqe;
  c.attention.num_heads = 4;
  c.attention.num_kv_heads = 2;
  c.attention.head_dim = 4;
  c.attention.top_k = 1;
  return c;
}

gqe::TrainRecipe tiny_recipe() {
  gqe::TrainRecipe r;
  r.seq_len = 8;
  r.micro_batch = 2;
  r.schedule.total_steps = 4;
  r.zclip.warmup_steps = 1;
  r.eval_every = 0;
  r.eval_batches = 0;
  gqe::resolve_recipe(r, 1, "fuzz recipe");
  return r;
}

std::shared_ptr<const std::vector<int64_t>> tokens() {
  static const auto t = [] {
    auto v = std::make_shared<std::vector<int64_t>>();
    for (int64_t i = 0; i < 400; ++i) v->push_back((i * 7 + i / 5) % 32);
    return v;
  }();
  return t;
}

struct Fixture {
  std::unique_ptr<gqe::Communicator> comm = gqe::make_local_communicator();
  gqe::LanguageModel model{tiny_config()};
  std::string template_files[3];
};
Fixture* fixture = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  at::manual_seed(7);
  fixture = new Fixture;
  const std::string run = gqe::fuzz::scratch_dir() + "/template_run";
  {
    gqe::TextTokenSource src(tokens(), 8, 2, 1);
    gqe::Trainer t(fixture->model, tiny_recipe(), src, nullptr, *fixture->comm, {run, nullptr});
    t.run(2);
    t.save_checkpoint();
  }
  const std::string dir = gqe::find_train_checkpoint(run);
  std::string seed;
  for (int i = 0; i < 3; ++i) {
    fixture->template_files[i] = gqe::fs::read_file(dir + "/" + kFiles[i]);
    seed += (i ? kSeparator : "") + fixture->template_files[i];
  }
  gqe::fs::remove_tree(run);
  if (const char* out = std::getenv("GQE_FUZZ_WRITE_SEED")) std::ofstream(out, std::ios::binary) << seed;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string dir = gqe::fuzz::scratch_dir() + "/checkpoint";
  gqe::fs::mkdirs(dir);
  size_t begin = 0;
  for (int i = 0; i < 3; ++i) {
    std::string file = fixture->template_files[i];
    if (begin <= input.size()) {
      size_t end = input.find(kSeparator, begin);
      if (end == std::string::npos) end = input.size();
      file = input.substr(begin, end - begin);
      begin = end == input.size() ? input.size() + 1 : end + kSeparator.size();
    }
    gqe::fuzz::write_input("checkpoint/" + std::string(kFiles[i]), file);
  }
  try {
    gqe::TextTokenSource src(tokens(), 8, 2, 1);
    gqe::Trainer t(fixture->model, tiny_recipe(), src, nullptr, *fixture->comm, {});
    t.resume(dir);
    if (t.step() < 4) t.run(t.step() + 1);
  } catch (const gqe::Error&) {
  }
  return 0;
}
