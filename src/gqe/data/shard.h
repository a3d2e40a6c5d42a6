// Token shards: flat arrays of token ids on disk, the input of the data loader.
//
// Two formats are read, detected by their first bytes:
//
// gqe shard (written by `gqe data prepare`), little-endian, 64-byte header then the tokens:
//   offset  0  char[8]  magic "GQETOKS\0"
//   offset  8  uint32   version (1)
//   offset 12  uint32   bytes per token: 2 (uint16) or 4 (uint32)
//   offset 16  uint64   token count N (> 0)
//   offset 24  uint64   vocabulary size of the tokenizer that wrote it (0 = unknown); every token < it
//   offset 32  uint64   checksum of the N*bytes token bytes (TokenChecksum below)
//   offset 40  uint64   FNV-1a 64 checksum of header bytes 0..39 (detects a damaged header)
//   offset 48  16 bytes zero (reserved)
//   offset 64  N tokens, uint16 or uint32 little-endian; the file size is exactly 64 + N*bytes.
//
// llm.c shard (karpathy/llm.c dev/data/*.py `write_datafile`), 1024-byte header of 256 int32:
//   header[0] magic 20240520, header[1] version 1 -> uint16 tokens (GPT-2 tokenizer);
//   header[0] magic 20240801, header[1] version 7 -> uint32 tokens (LLaMA-3 tokenizer);
//   header[2] token count N; the other header ints are 0. Then N tokens; file size 1024 + N*bytes.
//   llm.c has no checksum and no vocabulary size: nothing beyond sizes can be verified.
//
// Shards are memory-mapped read-only; the loader copies windows out of the mapping.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gqe {

enum class ShardFormat { kGqe, kLlmc };
enum class TokenDtype : uint32_t { kUInt16 = 2, kUInt32 = 4 };  // value = bytes per token

inline constexpr char kShardMagic[8] = {'G', 'Q', 'E', 'T', 'O', 'K', 'S', '\0'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr uint64_t kShardHeaderBytes = 64;
inline constexpr int32_t kLlmcMagicGpt2 = 20240520;    // version 1, uint16 tokens
inline constexpr int32_t kLlmcMagicLlama3 = 20240801;  // version 7, uint32 tokens
inline constexpr uint64_t kLlmcHeaderBytes = 256 * 4;

// FNV-1a 64-bit over bytes (start with kFnvOffset): the header checksum.
inline constexpr uint64_t kFnvOffset = 14695981039346656037ull;
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnvOffset);

// The token-data checksum, fed in pieces of any size. Word-wise so that it runs near memory speed: the
// bytes are read as 64-bit little-endian words w (the last one zero-padded) and each does
// h = (h ^ w) * 1099511628211; h ^= h >> 32, from h = kFnvOffset; finally the byte count n is mixed in
// the same way. Defined by this function; see docs/data.md.
class TokenChecksum {
 public:
  void update(const void* data, size_t n);
  uint64_t value() const;

 private:
  uint64_t h_ = kFnvOffset, bytes_ = 0;
  unsigned char tail_[8] = {};
  size_t tail_n_ = 0;
};
uint64_t token_checksum(const void* data, size_t n);

// The smallest dtype that holds ids < vocab_size (uint16 up to 65536).
TokenDtype dtype_for_vocab(uint64_t vocab_size);

// A read-only, memory-mapped shard of either format. Opening validates the header and the file size
// (and, for gqe shards with verify=true, both checksums); any problem throws gqe::FormatError whose
// message names the file and says what was found and what was expected.
class TokenShard {
 public:
  explicit TokenShard(const std::string& path, bool verify = true);
  ~TokenShard();
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const std::string& path() const { return path_; }
  ShardFormat format() const { return format_; }
  TokenDtype dtype() const { return dtype_; }
  uint64_t num_tokens() const { return num_tokens_; }
  uint64_t vocab_size() const { return vocab_size_; }  // 0 = unknown (llm.c shards)

  uint32_t token(uint64_t i) const;
  // Copies tokens [begin, begin + count) into out (widened to int64). Range must be inside the shard.
  void read(uint64_t begin, uint64_t count, int64_t* out) const;

 private:
  std::string path_;
  ShardFormat format_ = ShardFormat::kGqe;
  TokenDtype dtype_ = TokenDtype::kUInt16;
  uint64_t num_tokens_ = 0;
  uint64_t vocab_size_ = 0;
  const unsigned char* map_ = nullptr;  // whole file
  size_t map_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;
};

// Streams tokens into a gqe shard. Writes go to `path.tmp.<pid>`; finish() writes the header, fsyncs and
// renames onto `path`, so a reader never sees a half-written shard. Destroying an unfinished writer
// removes the temporary file. Tokens >= vocab_size (when vocab_size > 0) are rejected.
class ShardWriter {
 public:
  ShardWriter(const std::string& path, TokenDtype dtype, uint64_t vocab_size);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void append(const int64_t* tokens, size_t n);
  void append(const std::vector<int64_t>& tokens) { append(tokens.data(), tokens.size()); }
  uint64_t num_tokens() const { return count_; }
  void finish();  // an empty shard is an error (a reader would reject it)

 private:
  void flush();
  std::string path_, tmp_;
  TokenDtype dtype_;
  uint64_t vocab_size_;
  int fd_ = -1;
  uint64_t count_ = 0;
  TokenChecksum checksum_;
  std::vector<unsigned char> buf_;
};

// One-shot helpers (tests, small tools).
void write_token_shard(const std::string& path, const std::vector<int64_t>& tokens, TokenDtype dtype,
                       uint64_t vocab_size);
// Writes the llm.c layout (uint16 GPT-2 style, or uint32 LLaMA-3 style), atomically.
void write_llmc_shard(const std::string& path, const std::vector<int64_t>& tokens,
                      TokenDtype dtype = TokenDtype::kUInt16);

// Token ids against a model's vocabulary, checked when data is loaded (an id >= vocab_size would otherwise
// fail deep inside the embedding lookup, hours into a run). Throws gqe::FormatError naming `source`, the
// first offending id and its position: token offset first_index + i and, when bytes_per_token > 0, the
// byte offset header_bytes + (first_index + i) * bytes_per_token in the file.
void check_token_ids(const int64_t* tokens, size_t n, int64_t vocab_size, const std::string& source,
                     uint64_t first_index = 0, uint64_t header_bytes = 0, uint64_t bytes_per_token = 0);
// The same over a whole shard, read in pieces.
void check_token_ids(const TokenShard& shard, int64_t vocab_size);

// Expands a shard specification into paths: a comma-separated list whose items are files, directories
// (all *.tok and *.bin files inside, sorted) or glob patterns (sorted). Throws if nothing matches.
std::vector<std::string> resolve_shard_paths(const std::string& spec);

}  // namespace gqe
