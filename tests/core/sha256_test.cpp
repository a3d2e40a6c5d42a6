// SHA-256 of bytes and of files (OpenSSL's libcrypto), against the FIPS 180-2 test vectors.
#include "gqe/core/sha256.h"

#include <gtest/gtest.h>

#include <fstream>

#include "gqe/core/error.h"
#include "test_util.h"

namespace gqe {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileHashEqualsTheHashOfItsBytesAndRefusesWhatIsNoFile) {
  const std::string dir = test::scratch_dir("sha256");
  // Larger than the 1 MiB read buffer, so the file is hashed in several pieces.
  const std::string bytes = std::string(3 << 20, 'q') + "tail";
  std::ofstream(dir + "/f.bin", std::ios::binary) << bytes;
  EXPECT_EQ(sha256_file(dir + "/f.bin"), sha256_hex(bytes));
  EXPECT_THROW(sha256_file(dir + "/missing.bin"), Error);
  EXPECT_THROW(sha256_file(dir), Error);  // a directory
}

}  // namespace
}  // namespace gqe
