// gqe and the Hugging Face world, end to end: `gqe export --format hf` folders loaded by transformers
// (trust_remote_code) give gqe's logits and greedy generations, lm-evaluation-harness's own HFLM scores
// them as `gqe eval` does, and `gqe import` brings them back bit for bit. The Python half is
// tests/interop/hf_check.py, run with $GQE_PYTHON (torch, transformers, lm-eval); without it the tests skip.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <tuple>
#include <vector>
#include <nlohmann/json.hpp>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/utf8.h"
#include "gqe/tokenizers/sentencepiece.h"
#include "gqe/tokenizers/spm_model.h"
#include "gqe/io/checkpoint.h"
#include "gqe/interop/hf_export.h"
#include "gqe/io/safetensors.h"
#include "interop/interop_test_util.h"
#include "spm_test_util.h"
#include "test_util.h"

using namespace gqe;
using namespace gqe::interop;

namespace {

// The variants the issue names, over the model options the export maps (norms, MLPs, tying, RoPE).
struct Variant {
  std::string name;
  ModelConfig cfg;
};

std::vector<Variant> variants() {
  auto cfg = [](const std::string& kind, int64_t N, int64_t G, int64_t k, const std::string& variant) {
    ModelConfig c = test::small_config(kind, N, G, k, variant);  // d 32, d_h 8, 2 layers
    c.vocab_size = 256;                                           // gqe's byte tokenizer
    c.intermediate_size = 48;
    c.max_position_embeddings = 128;
    return c;
  };
  std::vector<Variant> v = {{"gqa", cfg("gqa", 8, 4, 1, "gqe")},
                            {"gqe_k1", cfg("gqe", 8, 4, 1, "gqe")},
                            {"gqe_k2", cfg("gqe", 8, 2, 2, "gqe")},
                            {"hard_concat", cfg("gqe", 8, 4, 1, "hard_concat")},
                            {"weighted_concat", cfg("gqe", 8, 2, 2, "weighted_concat")}};
  // The other model options, spread over the variants: LayerNorm + GELU + an untied head, no RoPE.
  v[2].cfg.norm_type = NormType::layernorm;
  v[2].cfg.mlp_type = MlpType::gelu;
  v[2].cfg.tie_word_embeddings = false;
  v[4].cfg.tie_word_embeddings = false;
  v[3].cfg.position_embedding = PositionEmbedding::none;
  return v;
}

const char* kPrompt = "And God said, Let there be light: and there was light.";

// gqe's logits of the prompt's bytes followed by some more text (full causal forward, the default kernels).
void write_gqe_logits(const std::string& ckpt, const std::string& path) {
  auto model = load_model_checkpoint(ckpt);
  model->eval();
  const std::string text = std::string(kPrompt) + " \xC3\xA9\xE2\x9C\x93 And the evening and the morning were the first day.";
  std::vector<int64_t> ids(text.begin(), text.end());
  for (auto& t : ids) t &= 0xFF;
  at::Tensor tokens = at::tensor(ids, at::kLong).unsqueeze(0);
  torch::NoGradGuard g;
  at::Tensor logits = model->forward(tokens).logits;
  save_safetensors(path, {{"tokens", tokens}, {"logits", logits.contiguous()}});
}

std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

}  // namespace

// The largest relative logit difference allowed between gqe and the exported model.
constexpr double kLogitTolerance = 1e-4;

TEST(HfExport, TransformersMatchesGqeLogitsCacheAndGreedyGeneration) {
  GQE_SKIP_WITHOUT_BIN();
  GQE_SKIP_WITHOUT_PYTHON();
  const std::string dir = test::scratch_dir("interop_models");
  const int64_t new_tokens = 40;
  nlohmann::json manifest;
  std::map<std::string, std::string> gqe_generated;
  uint64_t seed = 11;
  for (const auto& v : variants()) {
    const std::string ckpt = make_checkpoint(dir + "/" + v.name, v.cfg, seed++);
    const std::string hf = dir + "/" + v.name + "_hf";
    const test::CommandRun ex = test::run_gqe({"export", "--format", "hf", ckpt, hf});
    ASSERT_EQ(ex.rc, 0) << v.name << ": " << ex.out;
    write_gqe_logits(ckpt, dir + "/" + v.name + "_logits.safetensors");
    // gqe generate prints the prompt, the new tokens' bytes and a newline.
    const test::CommandRun gen = test::run_gqe({"generate", "--checkpoint", ckpt, "--greedy", "--threads", "1",
                                                "--max-new-tokens", std::to_string(new_tokens), "--prompt", kPrompt},
                                               test::RunOptions().keep_stderr_apart());
    ASSERT_EQ(gen.rc, 0) << v.name << ": " << gen.out;
    ASSERT_EQ(gen.out.rfind(kPrompt, 0), 0u) << gen.out;
    gqe_generated[v.name] = gen.out.substr(std::string(kPrompt).size(), size_t(new_tokens));
    manifest[v.name] = {{"hf_dir", hf},
                        {"gqe_logits", dir + "/" + v.name + "_logits.safetensors"},
                        {"prompt", kPrompt},
                        {"max_new_tokens", new_tokens}};
  }
  const nlohmann::json res = run_python("models", dir, manifest);
  for (const auto& v : variants()) {
    SCOPED_TRACE(v.name);
    const auto& r = res.at(v.name);
    ASSERT_FALSE(r.contains("error")) << r["error"].get<std::string>();
    EXPECT_EQ(r["type"], "GqeForCausalLM");
    EXPECT_LE(r["max_rel_diff"].get<double>(), kLogitTolerance);
    EXPECT_LE(r["max_rel_diff_cached"].get<double>(), kLogitTolerance);
    EXPECT_EQ(r["cache_type"], "DynamicCache");
    EXPECT_TRUE(r["tokenizer_matches_bytes"].get<bool>());
    EXPECT_EQ(r["generated_hex"].get<std::string>(), hex(gqe_generated[v.name]));
    if (v.cfg.attention.is_gqe()) {
      EXPECT_EQ(r["router_dtype_under_autocast"], "torch.float32");
      EXPECT_TRUE(r["router_same_under_autocast"].get<bool>());
    }
    EXPECT_LE(r["float64_attention_rel_err"].get<double>(), 1e-12);
    std::cout << "[ interop ] " << v.name << ": max relative logit difference " << r["max_rel_diff"].get<double>()
              << " (through the KV cache " << r["max_rel_diff_cached"].get<double>() << "), greedy "
              << (r["generated_hex"] == hex(gqe_generated[v.name]) ? "identical" : "DIFFERENT") << "\n";
  }
}

TEST(HfExport, ImportOfAnExportIsBitExact) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("interop_roundtrip");
  uint64_t seed = 31;
  for (const auto& v : variants()) {
    SCOPED_TRACE(v.name);
    const std::string ckpt = make_checkpoint(dir + "/" + v.name, v.cfg, seed++);
    const std::string hf = dir + "/" + v.name + "_hf", back = dir + "/" + v.name + "_back";
    test::CommandRun r = test::run_gqe({"export", "--format", "hf", ckpt, hf});
    ASSERT_EQ(r.rc, 0) << r.out;
    r = test::run_gqe({"import", hf, back});
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(fs::read_file(back + "/config.json"), fs::read_file(ckpt + "/config.json"));
    const SafetensorsFile a = load_safetensors(ckpt + "/model.safetensors"), b = load_safetensors(back + "/model.safetensors");
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      EXPECT_EQ(a.tensors[i].first, b.tensors[i].first);
      EXPECT_EQ(a.tensors[i].second.scalar_type(), b.tensors[i].second.scalar_type());
      EXPECT_TRUE(a.tensors[i].second.equal(b.tensors[i].second)) << a.tensors[i].first;
    }
    EXPECT_EQ(a.metadata, b.metadata);
    // The same tensors, names, order and metadata: the very same bytes.
    EXPECT_TRUE(fs::read_file(ckpt + "/model.safetensors") == fs::read_file(back + "/model.safetensors"));
    // The byte tokenizer, recorded as gqe train records it.
    EXPECT_EQ(fs::list_dir(back), (std::vector<std::string>{"config.json", "model.safetensors", "tokenizer_info.json"}));
    EXPECT_EQ(nlohmann::json::parse(fs::read_file(back + "/tokenizer_info.json"))["kind"], "bytes");
  }
}

TEST(HfExport, FolderHasTheFilesTransformersReads) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("interop_folder");
  const auto v = variants()[2];  // gqe k=2, untied head
  const std::string ckpt = make_checkpoint(dir + "/ckpt", v.cfg, 3), hf = dir + "/hf";
  const test::CommandRun r = test::run_gqe({"export", "--format", "hf", ckpt, hf});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(fs::list_dir(hf), (std::vector<std::string>{"config.json", "configuration_gqe.py", "model.safetensors",
                                                        "modeling_gqe.py", "tokenizer.json", "tokenizer_config.json"}));
  const auto cfg = nlohmann::json::parse(fs::read_file(hf + "/config.json"));
  EXPECT_EQ(cfg["model_type"], "gqe");
  EXPECT_EQ(cfg["auto_map"]["AutoModelForCausalLM"], "modeling_gqe.GqeForCausalLM");
  EXPECT_EQ(cfg["top_k_per_group"], 2);
  EXPECT_EQ(cfg["gqe_variant"], "gqe");
  // The embedded Python files are the repository's, byte for byte.
  EXPECT_EQ(fs::read_file(hf + "/modeling_gqe.py"),
            fs::read_file(test::source_dir() + "/python/gqe_hf/modeling_gqe.py"));
  EXPECT_EQ(fs::read_file(hf + "/configuration_gqe.py"),
            fs::read_file(test::source_dir() + "/python/gqe_hf/configuration_gqe.py"));
  const SafetensorsFile w = load_safetensors(hf + "/model.safetensors");
  ASSERT_NE(w.find("model.layers.1.self_attn.router.weight"), nullptr);
  ASSERT_NE(w.find("model.layers.0.input_layernorm.bias"), nullptr);
  ASSERT_NE(w.find("lm_head.weight"), nullptr);
  EXPECT_EQ(w.metadata.at("format"), "pt");
}

TEST(HfExport, BadInputIsAOneLineErrorAndWritesNothing) {
  GQE_SKIP_WITHOUT_BIN();
  const std::string dir = test::scratch_dir("interop_errors");
  const std::string ckpt = make_checkpoint(dir + "/ckpt", variants()[1].cfg, 5);
  test::CommandRun r = test::run_gqe({"export", "--format", "onnx", ckpt, dir + "/x"});
  EXPECT_TRUE(test::fails_with(r, "--format: expected \"hf\""));
  EXPECT_FALSE(fs::exists(dir + "/x"));
  // An imported folder's tokenizer that is a link to a file outside it is refused, not copied.
  ASSERT_EQ(test::run_gqe({"export", "--format", "hf", ckpt, dir + "/hf_link"}).rc, 0);
  ASSERT_EQ(std::rename((dir + "/hf_link/tokenizer.json").c_str(), (dir + "/outside.json").c_str()), 0);
  ASSERT_EQ(::symlink((dir + "/outside.json").c_str(), (dir + "/hf_link/tokenizer.json").c_str()), 0);
  r = test::run_gqe({"import", dir + "/hf_link", dir + "/imported"});
  EXPECT_TRUE(test::fails_with(r, "tokenizer.json"));
  EXPECT_FALSE(fs::exists(dir + "/imported"));
  // A vocabulary smaller than the byte tokenizer's, and no tokenizer beside the checkpoint.
  ModelConfig small = variants()[1].cfg;
  small.vocab_size = 61;
  const std::string small_ckpt = make_checkpoint(dir + "/small", small, 5);
  r = test::run_gqe({"export", "--format", "hf", small_ckpt, dir + "/x"});
  EXPECT_TRUE(test::fails_with(r, "the model's vocab_size 61 is not the byte tokenizer's 256: pass --tokenizer"));
  EXPECT_FALSE(fs::exists(dir + "/x"));
  // Asked for bytes anyway: the vocabulary cannot hold them.
  r = test::run_gqe({"export", "--format", "hf", "--tokenizer", "bytes", small_ckpt, dir + "/x"});
  EXPECT_TRUE(test::fails_with(r, "vocab_size is 61, too small for the byte tokenizer"));
  EXPECT_FALSE(fs::exists(dir + "/x"));
  // An existing non-empty folder is never overwritten.
  fs::mkdirs(dir + "/full");
  fs::write_file_atomic(dir + "/full/keep.txt", "x");
  r = test::run_gqe({"export", "--format", "hf", ckpt, dir + "/full"});
  EXPECT_TRUE(test::fails_with(r, "already exists and is not an empty folder"));
  EXPECT_EQ(fs::list_dir(dir + "/full"), std::vector<std::string>{"keep.txt"});
  // A damaged export: a tensor renamed to something a gqe model does not have; nothing is written.
  r = test::run_gqe({"export", "--format", "hf", ckpt, dir + "/hf"});
  ASSERT_EQ(r.rc, 0) << r.out;
  SafetensorsFile w = load_safetensors(dir + "/hf/model.safetensors");
  w.tensors[1].first = "model.vision_tower.weight";
  save_safetensors(dir + "/hf/model.safetensors", w.tensors, w.metadata);
  r = test::run_gqe({"import", dir + "/hf", dir + "/back"});
  EXPECT_TRUE(test::fails_with(r, "tensor 'model.vision_tower.weight': not a parameter of a gqe model"));
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_FALSE(fs::exists(dir + "/back"));
  // A folder of another model type.
  fs::write_file_atomic(dir + "/hf/config.json", R"({"model_type": "llama", "hidden_size": 32})");
  r = test::run_gqe({"import", dir + "/hf", dir + "/back"});
  EXPECT_TRUE(test::fails_with(r, "field 'model_type': expected \"gqe\""));
  EXPECT_FALSE(fs::exists(dir + "/back"));
}

TEST(HfExport, ParameterNamesMapBothWays) {
  for (const auto& v : variants()) {
    LanguageModel m(v.cfg);
    for (const auto& p : m.named_parameters()) {
      const std::string h = hf_parameter_name(p.key());
      EXPECT_EQ(gqe_parameter_name(h), p.key());
    }
  }
  EXPECT_EQ(hf_parameter_name("layers.3.attn_norm.bias"), "model.layers.3.input_layernorm.bias");
  EXPECT_EQ(hf_parameter_name("layers.0.attn.shared_q_proj.weight"), "model.layers.0.self_attn.shared_q_proj.weight");
  EXPECT_EQ(hf_parameter_name("layers.12.mlp_norm.weight"), "model.layers.12.post_attention_layernorm.weight");
  EXPECT_EQ(hf_parameter_name("norm.weight"), "model.norm.weight");
  EXPECT_THROW(gqe_parameter_name("model.layers.x.self_attn.q_proj.weight"), FormatError);
  EXPECT_THROW(gqe_parameter_name("model.layers.0.attn.q_proj.weight"), FormatError);
  EXPECT_THROW(hf_parameter_name("model.norm.weight"), FormatError);
}

TEST(HfExport, ConfigRoundTripsThroughTheFlatHuggingFaceFields) {
  for (const auto& v : variants()) {
    const ModelConfig back = model_config_from_hf(nlohmann::json::parse(hf_config_json(v.cfg).dump()), "test");
    EXPECT_EQ(model_config_to_json(back), model_config_to_json(v.cfg)) << v.name;
  }
  ModelConfig c = variants()[1].cfg;
  c.attention.implementation = AttentionImplementation::reference;
  c.attention.aux_loss_weight = 0.125;
  EXPECT_EQ(model_config_to_json(model_config_from_hf(nlohmann::json::parse(hf_config_json(c).dump()), "t")),
            model_config_to_json(c));
  nlohmann::json bad = nlohmann::json::parse(hf_config_json(c).dump());
  bad["top_k_per_group"] = 5;  // M = 2
  EXPECT_THROW(model_config_from_hf(bad, "t"), ConfigError);
}

// lm-evaluation-harness's own HFLM, on the exported folder and local task files (tests/interop/tasks/, the
// row layouts of the Hub datasets, read through the harness's own task YAMLs: HellaSwag, ARC, PIQA and the
// eight tasks of scripts/install-eval-data.sh's layout, mmlu as the harness's subject tasks), builds the
// requests gqe eval builds, scores each as gqe does, and reaches the same accuracies. One item is longer
// than the model's context, so both sides truncate it from the left. (scripts/check-eval-vs-lm-eval.sh
// does the same on the real sets.)
TEST(HfExport, LmEvalHarnessScoresEveryRequestAsGqeEval) {
  GQE_SKIP_WITHOUT_BIN();
  GQE_SKIP_WITHOUT_PYTHON();
  const std::string dir = test::scratch_dir("interop_harness");
  const std::string tasks = test::source_dir() + "/tests/interop/tasks";
  // Small embeddings: N(0, 1) ones make a confidently wrong model whose log-likelihoods reach hundreds of
  // nats, and the float32 rounding of those alone comes near 1e-4 (seen: 1.0e-4 at N(0, 1), 4e-5 at 0.3).
  const std::string ckpt = make_checkpoint(dir + "/ckpt", variants()[1].cfg, 7, 0.1), hf = dir + "/hf";
  test::CommandRun r = test::run_gqe({"export", "--format", "hf", ckpt, hf});
  ASSERT_EQ(r.rc, 0) << r.out;
  // task, file under tests/interop/tasks, docs, requests
  const std::vector<std::tuple<std::string, std::string, int, int>> expect = {
      {"hellaswag", "hellaswag_val.jsonl", 6, 6 * 4},
      {"arc_easy", "ARC-Easy-Test.jsonl", 6, 4 + 3 + 4 + 5 + 4 + 4},
      {"piqa", "valid.jsonl", 6, 6 * 2},
      {"winogrande", "winogrande/validation.jsonl", 3, 3 * 2},
      {"sciq", "sciq/validation.jsonl", 2, 2 * 4},
      {"openbookqa", "openbookqa/test.jsonl", 2, 2 * 4},
      {"boolq", "boolq/validation.jsonl", 2, 2 * 2},
      {"copa", "copa/validation.jsonl", 2, 2 * 2},
      {"commonsense_qa", "commonsense_qa/validation.jsonl", 2, 2 * 5},
      {"social_iqa", "social_iqa/validation.jsonl", 2, 2 * 3},
      {"mmlu", "mmlu/test.jsonl", 4, 4 * 4}};
  std::string names;
  nlohmann::json files = nlohmann::json::object();
  int requests = 0;
  for (const auto& [t, f, docs, reqs] : expect) {
    names += (names.empty() ? "" : ",") + t;
    files[t] = tasks + "/" + f;
    requests += reqs;
  }
  r = test::run_gqe({"eval", "--checkpoint", ckpt, "--task", names, "--data-dir", tasks, "--out",
                     dir + "/gqe_results.json", "--dump-requests", dir + "/gqe_requests.jsonl", "--batch-size", "4",
                     "--threads", "1", "--no-progress"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("requests cut from the left"), std::string::npos) << "no item exercises truncation:\n" << r.out;
  const nlohmann::json res = run_python("harness", dir,
                                        {{"hf_dir", hf},
                                         {"tasks", files},
                                         {"gqe_dump", dir + "/gqe_requests.jsonl"},
                                         {"gqe_results", dir + "/gqe_results.json"},
                                         {"work_dir", dir},
                                         {"batch_size", 4}});
  EXPECT_TRUE(res["missing"].empty()) << res["missing"].dump(2);
  EXPECT_EQ(res["requests"], requests);
  EXPECT_EQ(res["text_mismatches"], 0);
  EXPECT_EQ(res["greedy_mismatches"], 0);
  EXPECT_EQ(res["decision_mismatches"], 0);
  EXPECT_TRUE(res["metric_mismatches"].empty()) << res["metric_mismatches"].dump(2);
  EXPECT_LE(res["max_abs_diff"].get<double>(), 1e-4);
  std::cout << "[ interop ] lm-evaluation-harness HFLM vs gqe eval: " << res["requests"] << " requests, max |loglikelihood "
            << "difference| " << res["max_abs_diff"].get<double>() << " (relative " << res["max_rel_diff"].get<double>()
            << "; loglikelihoods from " << res["min_ll"].get<double>() << " to " << res["max_ll"].get<double>() << ")\n";
  for (const auto& [t, f, docs, reqs] : expect) {
    const auto& a = res["tasks"][t];
    EXPECT_EQ(a["docs"], docs) << t;
    EXPECT_EQ(a["requests"], reqs) << t;
    if (a["ties"].empty()) {
      EXPECT_EQ(a["harness_acc"], a["gqe_acc"]) << t;
      EXPECT_EQ(a["harness_acc_norm"], a["gqe_acc_norm"]) << t;  // both null where the harness reports acc alone
    }
    std::cout << "[ interop ] " << t << ": acc " << a["harness_acc"] << " (gqe " << a["gqe_acc"] << "), acc_norm "
              << a["harness_acc_norm"] << " (gqe " << a["gqe_acc_norm"] << "), ties " << a["ties"].size() << "\n";
  }
}

// A SentencePiece model exported as tokenizer.json: AutoTokenizer encodes every text to exactly the ids
// gqe's SentencePiece encoding gives, and decodes them to gqe's text (the text itself, except that SentencePiece
// reads a literal U+2581 as a space).
TEST(HfExport, SentencePieceTokenizerJsonEncodesAsSentencePiece) {
  GQE_SKIP_WITHOUT_BIN();
  GQE_SKIP_WITHOUT_PYTHON();
  const std::string dir = test::scratch_dir("interop_spm");
  // Pseudo-words from syllables (enough distinct pieces for 600 merges), some real words and contractions,
  // non-ASCII letters, numbers, punctuation, double spaces and blank lines.
  const char* syllables[] = {"ka", "ri", "on", "the", "st", "el", "mu", "ng", "\xC3\xA9", "\xC3\xBC", "qu", "ar",
                             "in", "go", "de", "s", "'t", "'ll", "lo", "ve", "\xCE\xB1", "ph", "ad", "ur"};
  std::string corpus;
  uint64_t x = 7;
  auto next = [&x] { return (x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int line = 0; line < 3000; ++line) {
    const int n = 3 + line % 11;
    for (int w = 0; w < n; ++w) {
      const int parts = 1 + int(next() % 3);
      for (int k = 0; k < parts; ++k) corpus += syllables[next() % 24];
      corpus += w + 1 < n ? (next() % 17 ? " " : "  ") : (line % 4 ? "." : ", " + std::to_string(line * 37) + ":");
    }
    corpus += line % 9 ? "\n" : "\n\n";
  }
  test::train_test_sentencepiece(dir, corpus, 600);
  std::string why;
  EXPECT_FALSE(sentencepiece_tokenizer_json(read_spm_model(dir + "/tok.model"), &why).empty()) << why;
  // Through `gqe export`, as a user runs it: a checkpoint whose vocabulary is the tokenizer's.
  ModelConfig cfg = variants()[1].cfg;
  cfg.vocab_size = 600;
  const std::string ckpt = make_checkpoint(dir + "/ckpt", cfg, 5), hf = dir + "/hf";
  const test::CommandRun r = test::run_gqe({"export", "--format", "hf", ckpt, hf, "--tokenizer", dir + "/tok.model"});
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(fs::is_file(hf + "/tokenizer.model"));
  EXPECT_EQ(nlohmann::json::parse(fs::read_file(hf + "/tokenizer_config.json"))["tokenizer_class"],
            "PreTrainedTokenizerFast");
  SentencePieceTokenizer tok(dir + "/tok.model");
  std::vector<std::string> texts = {
      corpus,  // the whole training text at once
      "  leading spaces,\ttabs\nand newlines\n\n   trailing   ",
      "digits 1234567890 3.14159 -42, years 1611 and 2026",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD, CJK \xE4\xB8\xAD\xE6\x96\x87, Greek \xCE\xB1\xCE\xB2\xCE\xB3",
      "contractions: I'm, you're, they've, it's, don't; quotes \"x\" 'y'",
      "<s> and </s> and <unk> written as text",
      "\xE2\x96\x81 the space symbol itself, and \xC2\xA0 a no-break space",
      "",
      " ",
      "a"};
  for (size_t at = 0; at + 300 < corpus.size(); at += 997) texts.push_back(corpus.substr(at, 300));  // cut anywhere
  nlohmann::json cases = nlohmann::json::array();
  for (const std::string& t : texts) {
    if (!is_valid_utf8(t)) continue;  // cuts inside a character are not text
    const std::vector<int64_t> ids = tok.encode(t);
    cases.push_back({{"text", t}, {"ids", ids}, {"decoded", tok.decode(ids)}});
  }
  ASSERT_GT(cases.size(), 20u);
  const nlohmann::json res = run_python("tokenizer", dir, {{"hf_dir", hf}, {"cases", cases}});
  EXPECT_EQ(res["cases"].get<size_t>(), cases.size());
  EXPECT_EQ(res["encode_mismatches"].size(), 0u) << res["encode_mismatches"].dump(1);
  EXPECT_EQ(res["decode_mismatches"].size(), 0u) << res["decode_mismatches"].dump(1);
}
