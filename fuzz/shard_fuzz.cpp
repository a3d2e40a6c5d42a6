// TokenShard (data/shard.cpp) on arbitrary bytes. Each input is opened three ways: as it is with the
// checksums verified, as it is without, and, when it starts with the gqe magic, with both checksums made
// right first, so that the fuzzer reaches the header fields behind a 64-bit checksum. A shard that opens
// must hand out every token it claims to hold (ASan checks the reads from the mapping), and record a
// vocabulary its tokens can spell.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "gqe/data/shard.h"

namespace {

void store_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

void open_and_read(const std::string& path, bool verify, size_t file_size) {
  try {
    const gqe::TokenShard s(path, verify);
    const uint64_t n = s.num_tokens();
    if (n == 0 || n > file_size) {
      std::fprintf(stderr, "shard_fuzz: a %zu-byte file opened as a shard of %llu tokens\n", file_size,
                   (unsigned long long)n);
      std::abort();
    }
    // The recorded vocabulary is one its tokens can spell (readers size and compare with it).
    if (s.vocab_size() > (s.dtype() == gqe::TokenDtype::kUInt16 ? 65536u : (uint64_t(1) << 32))) {
      std::fprintf(stderr, "shard_fuzz: opened with a vocabulary of %llu\n", (unsigned long long)s.vocab_size());
      std::abort();
    }
    std::vector<int64_t> all(n);
    s.read(0, n, all.data());
    for (uint64_t i = 0; i < n; i += 1 + n / 7)
      if (int64_t(s.token(i)) != all[i]) std::abort();
  } catch (const gqe::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gqe::fuzz::write_input("shard.tok", data, size);
  open_and_read(path, true, size);
  open_and_read(path, false, size);
  if (size >= gqe::kShardHeaderBytes && std::memcmp(data, gqe::kShardMagic, 8) == 0) {
    std::vector<unsigned char> fixed(data, data + size);
    store_u64(fixed.data() + 32, gqe::token_checksum(fixed.data() + gqe::kShardHeaderBytes,
                                                     size - gqe::kShardHeaderBytes));
    store_u64(fixed.data() + 40, gqe::fnv1a64(fixed.data(), 40));
    open_and_read(gqe::fuzz::write_input("fixed.tok", fixed.data(), fixed.size()), true, size);
  }
  return 0;
}
