#include "gqe/io/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <limits>

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
TEST(Safetensors, DirectoriesFifosAndDevicesAreRefused) {
  // A directory's size reads as garbage and /dev/zero's as 0; a FIFO would block: none is read.
  const std::string dir = test::scratch_dir("safetensors_not_files");
  ASSERT_EQ(::mkfifo((dir + "/fifo.safetensors").c_str(), 0644), 0);
  EXPECT_EQ(error_loading(dir), dir + ": not a regular file (a directory)");
  EXPECT_EQ(error_loading(dir + "/fifo.safetensors"), dir + "/fifo.safetensors: not a regular file (a FIFO)");
  EXPECT_EQ(error_loading("/dev/zero"), "/dev/zero: not a regular file (a character device)");
}

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

// The bytes of a file with a header written by hand: u64 length, the JSON padded with `pad` spaces, data.
std::string file_with_header(const std::string& json, size_t pad, const std::string& data) {
  const std::string h = json + std::string(pad, ' ');
  const uint64_t n = h.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + h + data;
}

std::string with_header_length(std::string bytes, uint64_t n) {
  std::memcpy(bytes.data(), &n, 8);
  return bytes;
}

TEST(Safetensors, HeaderLengthMustBeExact) {
  const std::string dir = test::scratch_dir("safetensors_hlen");
  // A header that needs at least 2 bytes of padding: the writer fills it up with spaces to 8-byte
  // alignment; the tensor's name sets the JSON's length.
  std::string bytes;
  uint64_t n = 0;
  for (std::string name = "w"; name.size() < 10; name += "x") {
    save_safetensors(dir + "/good.safetensors", {{name, at::arange(16, at::kFloat)}});
    bytes = fs::read_file(dir + "/good.safetensors");
    std::memcpy(&n, bytes.data(), 8);
    if (n - (bytes.substr(8, n).find_last_not_of(' ') + 1) >= 2) break;
  }
  ASSERT_GE(n - (bytes.substr(8, n).find_last_not_of(' ') + 1), 2u);
  EXPECT_NO_THROW(load_safetensors(dir + "/good.safetensors"));
  // 1 and 2 bytes short, inside the padding: the JSON still parses, but every tensor would shift.
  for (uint64_t shorter : {1, 2}) {
    write_all(dir + "/short.safetensors", with_header_length(bytes, n - shorter));
    const std::string e = error_loading(dir + "/short.safetensors");
    EXPECT_NE(e.find("short.safetensors: not a valid safetensors file: the data section has " +
                     std::to_string(64 + shorter) + " bytes but the tensors cover 64"),
              std::string::npos)
        << shorter << ": " << e;
  }
  // 1 byte long: the first data byte joins the header.
  write_all(dir + "/long.safetensors", with_header_length(bytes, n + 1));
  EXPECT_NE(error_loading(dir + "/long.safetensors"), "");
  // Padding is whitespace (the reference implementation accepts any JSON whitespace); anything else after
  // the JSON object is refused.
  std::string tab = bytes;
  tab[8 + n - 1] = '\t';
  write_all(dir + "/tab.safetensors", tab);
  EXPECT_EQ(error_loading(dir + "/tab.safetensors"), "");
  std::string junk = bytes;
  junk[8 + n - 1] = 'x';
  write_all(dir + "/junk.safetensors", junk);
  EXPECT_NE(error_loading(dir + "/junk.safetensors").find("does not end the JSON header"), std::string::npos);
  // The reference implementation's header cap.
  write_all(dir + "/huge.safetensors", with_header_length(bytes, kMaxSafetensorsHeaderBytes + 1));
  EXPECT_NE(error_loading(dir + "/huge.safetensors").find("exceeds the format's limit"), std::string::npos);
}

TEST(Safetensors, TensorsMustTileTheDataSectionExactly) {
  const std::string dir = test::scratch_dir("safetensors_tiling");
  const std::string data(16, '\0');
  auto load = [&](const std::string& json, const std::string& d) {
    write_all(dir + "/t.safetensors", file_with_header(json, 0, d));
    return error_loading(dir + "/t.safetensors");
  };
  EXPECT_EQ(load(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data), "");
  EXPECT_NE(load(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data).find("8 bytes after the last tensor"),
            std::string::npos);  // trailing bytes
  EXPECT_NE(load(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data).find("a gap of 8 bytes before tensor 'a'"),
            std::string::npos);
  EXPECT_NE(load(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data)
                .find("overlap"),
            std::string::npos);
  EXPECT_NE(load(R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,16]}})", data)
                .find("more elements than 2^64"),
            std::string::npos);
  EXPECT_NE(load(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,16]}})", data)
                .find("below 2^63"),
            std::string::npos);
  EXPECT_EQ(load(R"( {"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data), "");  // as the reference
  EXPECT_NE(load(R"([{"a":1}])", data).find("does not end the JSON header"), std::string::npos);
}

// A checkpoint of a tiny GQA model with one weight replaced through `edit`, written by hand so that the
// edit survives (save_model_checkpoint writes what the model holds).
std::string checkpoint_with(const std::string& dir, const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& edit,
                            const std::function<void(ModelConfig&)>& edit_stored_config = {}) {
  ModelConfig c = test::small_config("gqa", 4, 2);
  LanguageModel m(c);
  save_model_checkpoint(dir, m);
  std::vector<std::pair<std::string, at::Tensor>> ts;
  for (const auto& p : m.named_parameters()) ts.emplace_back(p.key(), p.value().detach().clone());
  edit(ts);
  ModelConfig stored = c;
  if (edit_stored_config) edit_stored_config(stored);
  save_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}, {"gqe_config", model_config_to_json(stored, -1)}});
  return dir;
}

std::string error_loading_checkpoint(const std::string& dir, const WeightLoadOptions& o = {}) {
  try {
    load_model_checkpoint(dir, o);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(Checkpoint, WeightsMustHaveTheModelsDtype) {
  const std::string base = test::scratch_dir("checkpoint_dtype");
  const std::string dir = checkpoint_with(base + "/int", [](auto& ts) { ts[0].second = ts[0].second.to(at::kInt); });
  const std::string e = error_loading_checkpoint(dir);
  EXPECT_NE(e.find("model.safetensors: tensor 'embed_tokens.weight' has dtype Int, the model expects Float"),
            std::string::npos)
      << e;
  const std::string half = checkpoint_with(base + "/half", [](auto& ts) { ts[1].second = ts[1].second.to(at::kHalf); });
  EXPECT_NE(error_loading_checkpoint(half).find("has dtype Half"), std::string::npos);
}

TEST(Checkpoint, NonFiniteWeightsAreRefusedUnlessAllowed) {
  const std::string base = test::scratch_dir("checkpoint_nonfinite");
  const std::string dir = checkpoint_with(base + "/nan", [](auto& ts) {
    ts[2].second.view({-1})[5] = std::numeric_limits<float>::quiet_NaN();
    ts[2].second.view({-1})[7] = std::numeric_limits<float>::infinity();
  });
  const std::string e = error_loading_checkpoint(dir);
  EXPECT_NE(e.find("holds 2 non-finite value(s) (NaN/Inf), the first at flat index 5; refusing to load them (pass "
                   "--allow-nonfinite-weights to load anyway)"),
            std::string::npos)
      << e;
  WeightLoadOptions allow;
  allow.allow_nonfinite = true;
  EXPECT_EQ(error_loading_checkpoint(dir, allow), "");
}

TEST(Checkpoint, ConfigMustMatchTheCopyInTheWeightsMetadata) {
  const std::string base = test::scratch_dir("checkpoint_config_copy");
  const std::string dir = checkpoint_with(base + "/rope", [](auto&) {}, [](ModelConfig& c) { c.rope_theta = 500000; });
  const std::string e = error_loading_checkpoint(dir);
  EXPECT_NE(e.find("model.safetensors: field 'rope_theta' of the model config saved with these weights is 500000.0, " +
                   dir + "/config.json has 10000.0"),
            std::string::npos)
      << e;
  // A kernel choice changes no result: the same weights load under the reference implementation.
  ModelConfig ref = test::small_config("gqa", 4, 2);
  ref.attention.implementation = AttentionImplementation::reference;
  LanguageModel m(ref);
  const std::string same = checkpoint_with(base + "/same", [](auto&) {});
  EXPECT_NO_THROW(load_model_weights(m, same + "/model.safetensors"));
}

}  // namespace
}  // namespace gqe
