#include "gqe/io/spm_model.h"

#include <gtest/gtest.h>

#include "gqe/core/error.h"

namespace gqe {
namespace {

TEST(SpmModel, DamagedFilesAreFormatErrorsNamingTheFile) {
  for (const std::string bytes : {std::string(""), std::string("\x0a\xff", 2), std::string("\x0a\x05\x0a\x01", 4),
                                  std::string("\x0f", 1)}) {
    try {
      parse_spm_model(bytes, "bad.model");
      ADD_FAILURE() << "accepted " << bytes.size() << " bytes";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("bad.model: not a SentencePiece model"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace gqe
