// The safetensors reader against the reference implementation (the Python `safetensors` package, run
// through GQE_PYTHON): on hand-made files, valid and damaged, both accept or both refuse.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>

#include "gqe/core/error.h"
#include "gqe/io/safetensors.h"
#include "process_util.h"
#include "test_util.h"

namespace gqe {
namespace {

std::string file_bytes(const std::string& header, const std::string& data, uint64_t length_delta = 0) {
  const uint64_t n = header.size() + length_delta;
  return std::string(reinterpret_cast<const char*>(&n), 8) + header + data;
}

TEST(SafetensorsReference, AcceptsAndRefusesWhatTheReferenceDoes) {
  GQE_SKIP_WITHOUT_PYTHON() << " (the reference safetensors package runs in it)";
  const std::string dir = test::scratch_dir("safetensors_reference");
  const std::string one = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  const std::string two = R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})";
  const std::string data(16, '\x01');
  struct Case {
    const char* name;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"plain", file_bytes(one, data)},
      {"space_padding", file_bytes(one + "      ", data)},
      {"whitespace_padding", file_bytes(one + "\n\t ", data)},
      {"leading_space", file_bytes(" " + one, data)},
      {"out_of_order_but_tiling", file_bytes(two, data)},
      {"empty_tensor", file_bytes(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data)},
      {"metadata", file_bytes(R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data)},
      {"length_1_short_in_padding", file_bytes(one + "   ", data, uint64_t(-1))},
      {"length_2_short_in_padding", file_bytes(one + "   ", data, uint64_t(-2))},
      {"length_1_long", file_bytes(one, data, 1)},
      {"trailing_bytes", file_bytes(one, data + "xyz")},
      {"gap", file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data)},
      {"overlap", file_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data)},
      {"size_mismatch", file_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data)},
      {"truncated", file_bytes(one, data.substr(0, 12))},
      {"junk_after_json", file_bytes(one + "  x", data)},
      {"not_an_object", file_bytes("[1, 2]  ", data)},
      {"bad_dtype", file_bytes(R"({"a":{"dtype":"Q32","shape":[4],"data_offsets":[0,16]}})", data)},
  };
  for (const Case& c : cases) {
    const std::string path = dir + "/" + c.name + ".safetensors";
    std::ofstream(path, std::ios::binary) << c.bytes;
    bool gqe_accepts = true;
    std::string why;
    try {
      load_safetensors(path);
    } catch (const FormatError& e) {
      gqe_accepts = false;
      why = e.what();
    }
    const test::CommandRun ref = test::run(
        {test::python(), "-c", "import sys; from safetensors.numpy import load_file; load_file(sys.argv[1])", path});
    ASSERT_TRUE(ref.rc >= 0 && ref.signal == 0) << c.name << ": " << test::describe(ref);
    const bool reference_accepts = ref.rc == 0;
    EXPECT_EQ(gqe_accepts, reference_accepts) << c.name << ": gqe " << (gqe_accepts ? "accepts" : "refuses: " + why);
  }
}

}  // namespace
}  // namespace gqe
