// parse_spm_model (io/spm_model.cpp) on arbitrary bytes: the protobuf reader behind `gqe export`'s
// SentencePiece conversion, and the check of the precompiled charsmaps every model passes before
// libsentencepiece loads it, must refuse a damaged .model with gqe::FormatError, never read past its input.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "gqe/tokenizers/spm_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const gqe::SpmModel m = gqe::parse_spm_model(bytes, "tokenizer.model");
    (void)m;
  } catch (const gqe::Error&) {
  }
  return 0;
}
