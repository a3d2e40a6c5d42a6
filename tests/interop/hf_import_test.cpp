// `gqe import` of folders that did not come straight from `gqe export`: a run's tokenizer survives export ->
// import -> export (and the imported run generates and evaluates as the original), and folders that
// transformers saved in float16 or bfloat16 become float32 checkpoints.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "gqe/core/fs.h"
#include "gqe/tokenizers/run_tokenizer.h"
#include "gqe/interop/hf_export.h"
#include "gqe/io/safetensors.h"
#include "interop/interop_test_util.h"
#include "interop/interop_tokenizers.h"
#include "test_util.h"

using namespace gqe;
using namespace gqe::interop;

namespace {

ModelConfig model_config(int64_t vocab) {
  ModelConfig c = test::small_config("gqe", 8, 2, 2, "gqe");
  c.vocab_size = vocab;
  c.intermediate_size = 48;
  c.max_position_embeddings = 128;
  return c;
}

// The folder's files that hold the tokenizer, and their bytes.
std::vector<std::pair<std::string, std::string>> tokenizer_files(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model"})
    if (fs::exists(dir + "/" + f)) out.emplace_back(f, fs::read_file(dir + "/" + f));
  return out;
}

// gqe's stdout, or "FAILED (rc N): " and both its outputs.
std::string gqe_out(const test::Args& args) {
  const test::CommandRun r = test::run_gqe(args, test::RunOptions().keep_stderr_apart());
  if (r.rc != 0) return "FAILED (rc " + std::to_string(r.rc) + "): " + r.out + r.err;
  return r.out;
}

}  // namespace

// For each kind of tokenizer a run records (bytes, SentencePiece, a byte-level BPE tokenizer.json): the
// imported run records it too (tokenizer_info.json and its file), generates and evaluates exactly as the
// original, and exporting it again gives the first export's files, byte for byte.
TEST(HfImport, ExportImportExportKeepsTheTokenizer) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("interop_import_tokenizer");
  const std::string tasks = test::source_dir() + "/tests/interop/tasks";
  struct Case {
    std::string name, kind, file;  // the recorded kind, and the tokenizer file in the run ("" for bytes)
    int64_t vocab;
    std::string spec;
  };
  fs::mkdirs(dir + "/spm");
  const std::vector<Case> cases = {
      {"bytes", "bytes", "", 256, "bytes"},
      {"sentencepiece", "sentencepiece", "tokenizer.model", 320, train_small_sentencepiece(dir + "/spm", 320)},
      {"bpe", "bpe", "tokenizer.json", 320, write_bpe_tokenizer(dir + "/tokenizer.json", true)}};
  uint64_t seed = 40;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string ckpt = dir + "/" + c.name, hf = ckpt + "_hf", back = ckpt + "_back", hf2 = ckpt + "_hf2";
    make_checkpoint(ckpt, model_config(c.vocab), seed++, 0.3);
    record_run_tokenizer(ckpt, c.spec);
    test::CommandRun r = test::run_gqe({"export", "--format", "hf", ckpt, hf});
    ASSERT_EQ(r.rc, 0) << r.out;
    r = test::run_gqe({"import", hf, back});
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto rec = nlohmann::json::parse(fs::read_file(back + "/tokenizer_info.json"));
    EXPECT_EQ(rec["kind"], c.kind);
    if (!c.file.empty()) {
      EXPECT_EQ(rec["files"], nlohmann::json::array({c.file}));
      EXPECT_EQ(fs::read_file(back + "/" + c.file), fs::read_file(ckpt + "/" + c.file));
    }
    EXPECT_EQ(rec["vocab_size"], nlohmann::json::parse(fs::read_file(ckpt + "/tokenizer_info.json"))["vocab_size"]);
    // generate and eval find the tokenizer and give the original's output.
    const test::Args gen = {"generate", "--greedy", "--threads",    "1",           "--max-new-tokens",
                            "12",       "--prompt", "And God said", "--checkpoint"};
    const std::string original = gqe_out(test::concat(gen, {ckpt}));
    EXPECT_EQ(original.find("FAILED"), std::string::npos) << original;
    EXPECT_EQ(gqe_out(test::concat(gen, {back})), original);
    const test::Args ev = {"eval", "--task",    "piqa", "--data-dir",    tasks,         "--limit",
                           "3",    "--threads", "1",    "--no-progress", "--checkpoint"};
    ASSERT_EQ(gqe_out(test::concat(ev, {ckpt, "--out", ckpt + "_eval.json"})).find("FAILED"), std::string::npos);
    const std::string back_eval = gqe_out(test::concat(ev, {back, "--out", back + "_eval.json"}));
    ASSERT_EQ(back_eval.find("FAILED"), std::string::npos) << back_eval;
    EXPECT_EQ(nlohmann::json::parse(fs::read_file(back + "_eval.json"))["results"],
              nlohmann::json::parse(fs::read_file(ckpt + "_eval.json"))["results"]);
    // Export again: the same folder.
    r = test::run_gqe({"export", "--format", "hf", back, hf2});
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(fs::list_dir(hf2), fs::list_dir(hf));
    EXPECT_EQ(tokenizer_files(hf2), tokenizer_files(hf));
    EXPECT_FALSE(tokenizer_files(hf).empty());
    EXPECT_EQ(fs::read_file(hf2 + "/config.json"), fs::read_file(hf + "/config.json"));
    EXPECT_TRUE(fs::read_file(hf2 + "/model.safetensors") == fs::read_file(hf + "/model.safetensors"));
  }
}

// A byte-tokenizer folder from an earlier export (its tokenizer.json had "<|endoftext|>" at id 256) still
// imports as the byte tokenizer, and a tokenizer file gqe cannot read is an error naming it.
TEST(HfImport, EarlierByteExportsAndBrokenTokenizers) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("interop_import_tokenizer_files");
  const std::string ckpt = make_checkpoint(dir + "/ckpt", model_config(256), 7), hf = dir + "/hf";
  ASSERT_EQ(test::run_gqe({"export", "--format", "hf", ckpt, hf}).rc, 0);
  auto tj = nlohmann::ordered_json::parse(fs::read_file(hf + "/tokenizer.json"));
  tj["added_tokens"] = {{{"id", 256}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}}};
  fs::write_file_atomic(hf + "/tokenizer.json", tj.dump(2) + "\n");
  test::CommandRun r = test::run_gqe({"import", hf, dir + "/back"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(fs::read_file(dir + "/back/tokenizer_info.json"))["kind"], "bytes");
  EXPECT_FALSE(fs::exists(dir + "/back/tokenizer.json"));

  fs::write_file_atomic(hf + "/tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  r = test::run_gqe({"import", hf, dir + "/broken"});
  EXPECT_TRUE(test::fails_with(r, "tokenizer.json"));
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_FALSE(fs::exists(dir + "/broken"));
}

// A folder saved in float16 or bfloat16 (as transformers writes it after .half() or
// .to(torch.bfloat16): the tensors in that dtype, config.json's "dtype" naming it) imports as float32 weights
// holding exactly the saved values, and the command says so; float64 is rounded; integers are refused.
TEST(HfImport, HalfPrecisionFoldersBecomeFloat32) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("interop_import_dtype");
  ModelConfig cfg = model_config(256);
  cfg.tie_word_embeddings = false;
  const std::string ckpt = make_checkpoint(dir + "/ckpt", cfg, 9), hf = dir + "/hf";
  ASSERT_EQ(test::run_gqe({"export", "--format", "hf", ckpt, hf}).rc, 0);
  const SafetensorsFile exported = load_safetensors(hf + "/model.safetensors");
  const SafetensorsFile original = load_safetensors(ckpt + "/model.safetensors");
  struct Case {
    std::string name;
    at::ScalarType type;
    std::string said;
  };
  const std::vector<Case> cases = {{"float16", at::kHalf, "converted "},
                                   {"bfloat16", at::kBFloat16, "converted "},
                                   {"float64", at::kDouble, "rounded "}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string folder = dir + "/hf_" + c.name, back = dir + "/back_" + c.name;
    fs::mkdirs(folder);
    for (const char* f : {"configuration_gqe.py", "modeling_gqe.py", "tokenizer.json", "tokenizer_config.json"})
      fs::write_file_atomic(folder + "/" + f, fs::read_file(hf + "/" + f));
    auto config = nlohmann::ordered_json::parse(fs::read_file(hf + "/config.json"));
    config["dtype"] = c.name;
    fs::write_file_atomic(folder + "/config.json", config.dump(2));
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& [name, t] : exported.tensors) tensors.emplace_back(name, t.to(c.type));
    save_safetensors(folder + "/model.safetensors", tensors, {{"format", "pt"}});
    const test::CommandRun r = test::run_gqe({"import", folder, back});
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find(c.said + std::to_string(tensors.size()) + " " + c.name + " tensors to float32"),
              std::string::npos)
        << r.out;
    const SafetensorsFile got = load_safetensors(back + "/model.safetensors");
    ASSERT_EQ(got.tensors.size(), original.tensors.size());
    for (size_t i = 0; i < got.tensors.size(); ++i) {
      const auto& [name, t] = got.tensors[i];
      EXPECT_EQ(name, original.tensors[i].first);
      EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
      EXPECT_TRUE(t.equal(original.tensors[i].second.to(c.type).to(at::kFloat))) << name;
    }
    EXPECT_EQ(fs::read_file(back + "/config.json"), fs::read_file(ckpt + "/config.json"));
  }
  // Integer weights are not a model's: refused, naming the file and the tensor; nothing written.
  std::vector<std::pair<std::string, at::Tensor>> tensors = exported.tensors;
  tensors[0].second = tensors[0].second.to(at::kInt);
  save_safetensors(dir + "/hf_float16/model.safetensors", tensors, {{"format", "pt"}});
  const test::CommandRun r = test::run_gqe({"import", dir + "/hf_float16", dir + "/back_int"});
  EXPECT_TRUE(test::fails_with(r, "model.safetensors: tensor '" + original.tensors[0].first + "' has dtype Int"));
  EXPECT_FALSE(fs::exists(dir + "/back_int"));
}

// The same with folders transformers itself saved (save_pretrained after casting the loaded model).
TEST(HfImport, FoldersTransformersSavedInHalfPrecision) {
  GQE_SKIP_WITHOUT_BIN();
  GQE_SKIP_WITHOUT_PYTHON();
  const std::string dir = test::scratch_dir("interop_import_dtype_hf");
  const std::string ckpt = make_checkpoint(dir + "/ckpt", model_config(256), 10), hf = dir + "/hf";
  ASSERT_EQ(test::run_gqe({"export", "--format", "hf", ckpt, hf}).rc, 0);
  const SafetensorsFile original = load_safetensors(ckpt + "/model.safetensors");
  for (const auto& [name, type] : {std::pair{"float16", at::kHalf}, {"bfloat16", at::kBFloat16}}) {
    SCOPED_TRACE(name);
    const std::string saved = dir + "/saved_" + name, back = dir + "/back_" + name;
    const nlohmann::json res = run_python("save", dir, {{"hf_dir", hf}, {"out_dir", saved}, {"dtype", name}});
    EXPECT_EQ(res["dtypes"], nlohmann::json::array({type == at::kHalf ? "F16" : "BF16"}));
    const test::CommandRun r = test::run_gqe({"import", saved, back});
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find(std::string(" ") + name + " tensors to float32"), std::string::npos) << r.out;
    const SafetensorsFile got = load_safetensors(back + "/model.safetensors");
    ASSERT_EQ(got.tensors.size(), original.tensors.size());
    for (size_t i = 0; i < got.tensors.size(); ++i)
      EXPECT_TRUE(got.tensors[i].second.equal(original.tensors[i].second.to(type).to(at::kFloat))) << got.tensors[i].first;
    EXPECT_EQ(fs::read_file(back + "/config.json"), fs::read_file(ckpt + "/config.json"));
  }
}
