// parse_model_config (core/config.cpp) on arbitrary text, then what `gqe info` does with a config that
// parsed: the parameter counts and FLOPs (UBSan reports any integer overflow there). A config that
// parses must also write out and parse back to itself.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "gqe/core/config.h"
#include "gqe/core/model_stats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const gqe::ModelConfig c = gqe::parse_model_config(text, "config.json");
    const std::string written = gqe::model_config_to_json(c);
    const gqe::ModelConfig back = gqe::parse_model_config(written, "written config.json");
    if (gqe::model_config_to_json(back) != written) {
      std::fprintf(stderr, "config_fuzz: the config does not read back as written:\n%s\n", written.c_str());
      std::abort();
    }
    (void)gqe::describe_model(c, c.max_position_embeddings);
  } catch (const gqe::Error&) {
  }
  return 0;
}
