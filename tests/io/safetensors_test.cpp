#include "gqe/io/safetensors.h"

#include <gtest/gtest.h>

#include <fstream>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/io/checkpoint.h"
#include "test_util.h"

namespace gqe {
namespace {

void write_all(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

std::string error_loading(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTripIsBitExact) {
  const std::string dir = test::scratch_dir("safetensors_roundtrip");
  std::vector<std::pair<std::string, at::Tensor>> ts = {
      {"a.weight", at::randn({3, 5})},
      {"b", at::randn({7}, at::kDouble)},
      {"c", at::randn({2, 2}).to(at::kBFloat16)},
      {"d", at::randn({4}).to(at::kHalf)},
      {"idx", at::randint(0, 1000, {6}, at::kLong)},
      {"empty", at::empty({0, 3})},
      {"scalar", at::tensor(3.5f).view({})},
      {"strided", at::randn({4, 4}).t()},  // non-contiguous input
  };
  save_safetensors(dir + "/t.safetensors", ts, {{"k", "v"}});
  SafetensorsFile f = load_safetensors(dir + "/t.safetensors");
  ASSERT_EQ(f.tensors.size(), ts.size());
  EXPECT_EQ(f.metadata.at("k"), "v");
  for (const auto& [name, t] : ts) {
    const at::Tensor* got = f.find(name);
    ASSERT_NE(got, nullptr) << name;
    EXPECT_EQ(got->scalar_type(), t.scalar_type());
    EXPECT_TRUE(at::equal(*got, t.contiguous())) << name;
  }
  // The header follows the format: u64 length, then JSON; data starts 8-byte aligned.
  std::string bytes = fs::read_file(dir + "/t.safetensors");
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
}

TEST(Safetensors, CorruptAndTruncatedFilesGiveClearErrors) {
  const std::string dir = test::scratch_dir("safetensors_corrupt");
  const std::string good = dir + "/good.safetensors";
  save_safetensors(good, {{"w", at::randn({64})}});
  const std::string bytes = fs::read_file(good);

  write_all(dir + "/trunc.safetensors", bytes.substr(0, bytes.size() - 10));
  std::string e = error_loading(dir + "/trunc.safetensors");
  EXPECT_NE(e.find("trunc.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;

  write_all(dir + "/tiny.safetensors", bytes.substr(0, 5));
  EXPECT_NE(error_loading(dir + "/tiny.safetensors").find("tiny.safetensors"), std::string::npos);

  std::string big = bytes;
  big[0] = '\xff', big[1] = '\xff', big[2] = '\xff';
  write_all(dir + "/hlen.safetensors", big);
  EXPECT_NE(error_loading(dir + "/hlen.safetensors").find("header length"), std::string::npos);

  std::string json = bytes;
  json[8] = 'X';
  write_all(dir + "/json.safetensors", json);
  EXPECT_NE(error_loading(dir + "/json.safetensors").find("JSON"), std::string::npos);

  std::string dtype = bytes;
  dtype.replace(dtype.find("F32"), 3, "Q32");
  write_all(dir + "/dtype.safetensors", dtype);
  EXPECT_NE(error_loading(dir + "/dtype.safetensors").find("dtype"), std::string::npos);

  EXPECT_NE(error_loading(dir + "/missing.safetensors").find("cannot open"), std::string::npos);

  // The root cause of a fuzz/tasks_fuzz finding, here too: a number beyond double range in the header
  // escaped as a JSON library exception.
  const std::string h = R"({"w":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})";
  std::string overflow(8, '\0');
  overflow[0] = char(h.size());
  write_all(dir + "/overflow.safetensors", overflow + h + "abcd");
  EXPECT_THROW(load_safetensors(dir + "/overflow.safetensors"), FormatError);
  EXPECT_NE(error_loading(dir + "/overflow.safetensors").find("header is not valid JSON"), std::string::npos);
}

// Crashes of fuzz/safetensors_fuzz (its inputs fuzz/corpus/safetensors/shape-*): a shape entry of 2^63 or
// more, or a shape whose element or byte count wraps around 64 bits to the byte range given (here 0),
// reached at::empty and escaped as a c10::Error.
TEST(Safetensors, ShapesBeyond64BitCountsAreFormatErrors) {
  const std::string dir = test::scratch_dir("safetensors_huge_shape");
  const char* cases[][2] = {{"negative", R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,0]}})"},
                            {"bytes", R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})"},
                            {"elements", R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"}};
  for (const auto& [name, header] : cases) {
    const std::string h = header;
    std::string file(8, '\0');
    for (int i = 0; i < 8; ++i) file[i] = char((h.size() >> (8 * i)) & 0xff);
    const std::string path = dir + "/" + name + ".safetensors";
    write_all(path, file + h);
    std::string e;
    try {
      load_safetensors(path);
    } catch (const FormatError& err) {
      e = err.what();
    }
    EXPECT_NE(e.find(path + ": not a valid safetensors file: tensor 'a': "), std::string::npos) << name << ": " << e;
    EXPECT_NE(e.find("shape"), std::string::npos) << name << ": " << e;
  }
}

TEST(Checkpoint, ModelRoundTripAndStrictLoading) {
  const std::string dir = test::scratch_dir("checkpoint_roundtrip");
  at::manual_seed(9);
  ModelConfig c = test::small_config("gqe", 8, 4, 1);
  LanguageModel m(c);
  test::randomise_routers(m);
  save_model_checkpoint(dir + "/ckpt", m);
  auto loaded = load_model_checkpoint(dir + "/ckpt");
  m.eval();
  loaded->eval();
  at::Tensor tok = at::randint(0, c.vocab_size, {1, 7}, at::kLong);
  EXPECT_TRUE(at::equal(m.forward(tok).logits, loaded->forward(tok).logits));
  // documented names
  SafetensorsFile f = load_safetensors(dir + "/ckpt/model.safetensors");
  for (const char* name : {"embed_tokens.weight", "layers.0.attn.q_proj.weight", "layers.1.attn.router.weight",
                           "layers.0.attn.shared_q_proj.weight", "layers.0.attn.o_proj.weight",
                           "layers.1.mlp.gate_proj.weight", "layers.0.attn_norm.weight", "norm.weight"})
    EXPECT_NE(f.find(name), nullptr) << name;
  EXPECT_EQ(f.find("lm_head.weight"), nullptr);  // tied
  // a GQA model cannot load GQE weights: the error names the tensor
  LanguageModel gqa(test::small_config("gqa", 8, 4));
  try {
    load_model_weights(gqa, dir + "/ckpt/model.safetensors");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("o_proj.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gqe
