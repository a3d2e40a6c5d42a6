#include "gqe/data/shard.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"

namespace gqe {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "token shard I/O assumes a little-endian host");

namespace {

template <typename T>
T load_le(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void store_le(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

std::string errno_text() { return std::strerror(errno); }

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(path + ": write failed: " + errno_text());
    }
    p += w;
    n -= size_t(w);
  }
}

// Builds the 64-byte gqe shard header.
std::vector<unsigned char> gqe_header(TokenDtype dtype, uint64_t count, uint64_t vocab, uint64_t checksum) {
  std::vector<unsigned char> h(kShardHeaderBytes, 0);
  std::memcpy(h.data(), kShardMagic, 8);
  store_le<uint32_t>(h.data() + 8, kShardVersion);
  store_le<uint32_t>(h.data() + 12, static_cast<uint32_t>(dtype));
  store_le<uint64_t>(h.data() + 16, count);
  store_le<uint64_t>(h.data() + 24, vocab);
  store_le<uint64_t>(h.data() + 32, checksum);
  store_le<uint64_t>(h.data() + 40, fnv1a64(h.data(), 40));
  return h;
}

std::string describe_magic(const unsigned char* p, size_t n) {
  char buf[64];
  std::string s = "first bytes";
  for (size_t i = 0; i < std::min<size_t>(n, 8); ++i) {
    std::snprintf(buf, sizeof buf, " %02x", p[i]);
    s += buf;
  }
  return s;
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

namespace {
inline uint64_t mix_word(uint64_t h, uint64_t w) {
  h = (h ^ w) * 1099511628211ull;
  return h ^ (h >> 32);
}
}  // namespace

void TokenChecksum::update(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  bytes_ += n;
  if (tail_n_ > 0) {  // complete the pending partial word first
    const size_t take = std::min(n, 8 - tail_n_);
    std::memcpy(tail_ + tail_n_, p, take);
    tail_n_ += take;
    p += take;
    n -= take;
    if (tail_n_ < 8) return;
    h_ = mix_word(h_, load_le<uint64_t>(tail_));
    tail_n_ = 0;
  }
  const size_t words = n / 8;
  uint64_t h = h_;
  for (size_t i = 0; i < words; ++i) h = mix_word(h, load_le<uint64_t>(p + 8 * i));
  h_ = h;
  tail_n_ = n - 8 * words;
  std::memcpy(tail_, p + 8 * words, tail_n_);
}

uint64_t TokenChecksum::value() const {
  uint64_t h = h_;
  if (tail_n_ > 0) {
    unsigned char last[8] = {};
    std::memcpy(last, tail_, tail_n_);
    h = mix_word(h, load_le<uint64_t>(last));
  }
  return mix_word(h, bytes_);
}

uint64_t token_checksum(const void* data, size_t n) {
  TokenChecksum c;
  c.update(data, n);
  return c.value();
}

TokenDtype dtype_for_vocab(uint64_t vocab_size) {
  return vocab_size > 0 && vocab_size <= 65536 ? TokenDtype::kUInt16 : TokenDtype::kUInt32;
}

// ---------------------------------------------------------------------------------------------------
// Reader

TokenShard::TokenShard(const std::string& path, bool verify) : path_(path) {
  // A directory, FIFO or device (/dev/zero maps as endless zeros) is refused before it is mapped.
  uint64_t size = 0;
  int fd = fs::open_regular_file(path, UINT64_MAX, &size);
  if (size == 0) {
    ::close(fd);
    throw FormatError(path + ": empty file (0 bytes), expected a token shard (gqe or llm.c format)");
  }
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw Error(path + ": cannot mmap token shard: " + errno_text());
  map_ = static_cast<const unsigned char*>(m);
  map_bytes_ = size;
  try {
    uint64_t header_bytes = 0;
    if (size >= 8 && std::memcmp(map_, kShardMagic, 8) == 0) {
      format_ = ShardFormat::kGqe;
      header_bytes = kShardHeaderBytes;
      if (size < kShardHeaderBytes)
        throw FormatError(path + ": truncated gqe shard header: file has " + std::to_string(size) +
                          " bytes, the header alone is " + std::to_string(kShardHeaderBytes));
      const uint64_t stored_hsum = load_le<uint64_t>(map_ + 40);
      if (verify && fnv1a64(map_, 40) != stored_hsum)
        throw FormatError(path + ": corrupted gqe shard header (header checksum mismatch)");
      const uint32_t version = load_le<uint32_t>(map_ + 8);
      if (version != kShardVersion)
        throw FormatError(path + ": unsupported gqe shard version " + std::to_string(version) + " (expected " +
                          std::to_string(kShardVersion) + ")");
      const uint32_t width = load_le<uint32_t>(map_ + 12);
      if (width != 2 && width != 4)
        throw FormatError(path + ": bad token width " + std::to_string(width) +
                          " bytes in gqe shard header (expected 2 = uint16 or 4 = uint32)");
      dtype_ = static_cast<TokenDtype>(width);
      num_tokens_ = load_le<uint64_t>(map_ + 16);
      vocab_size_ = load_le<uint64_t>(map_ + 24);
      // Readers size and compare with the recorded vocabulary: it must be one the tokens can spell (the
      // writer refuses the same), not 2^64-1 turning negative as an int64.
      const uint64_t max_vocab = width == 2 ? 65536 : (uint64_t(1) << 32);
      if (vocab_size_ > max_vocab)
        throw FormatError(path + ": gqe shard header records a vocabulary of " + std::to_string(vocab_size_) +
                          ", more than its " + std::to_string(width * 8) + "-bit tokens can hold (at most " +
                          std::to_string(max_vocab) + ")");
    } else if (size >= 8 && (load_le<int32_t>(map_) == kLlmcMagicGpt2 || load_le<int32_t>(map_) == kLlmcMagicLlama3)) {
      format_ = ShardFormat::kLlmc;
      header_bytes = kLlmcHeaderBytes;
      if (size < kLlmcHeaderBytes)
        throw FormatError(path + ": truncated llm.c shard header: file has " + std::to_string(size) +
                          " bytes, the header alone is 1024 (256 int32)");
      const int32_t magic = load_le<int32_t>(map_);
      const int32_t version = load_le<int32_t>(map_ + 4);
      const int32_t expected_version = magic == kLlmcMagicGpt2 ? 1 : 7;
      if (version != expected_version)
        throw FormatError(path + ": llm.c shard with magic " + std::to_string(magic) + " has version " +
                          std::to_string(version) + ", expected " + std::to_string(expected_version));
      dtype_ = magic == kLlmcMagicGpt2 ? TokenDtype::kUInt16 : TokenDtype::kUInt32;
      const int32_t n = load_le<int32_t>(map_ + 8);
      if (n < 0) throw FormatError(path + ": llm.c shard header has negative token count " + std::to_string(n));
      num_tokens_ = static_cast<uint64_t>(n);
    } else {
      throw FormatError(path + ": not a token shard: " + describe_magic(map_, size) +
                        "; expected the gqe magic \"GQETOKS\\0\" or an llm.c int32 magic 20240520/20240801");
    }
    if (num_tokens_ == 0)
      throw FormatError(path + ": empty token shard (header says 0 tokens); a shard must hold at least 1 token");
    const uint64_t width = static_cast<uint64_t>(dtype_);
    const uint64_t payload = size - header_bytes;
    const bool truncated = num_tokens_ > payload / width;
    if (truncated || payload != num_tokens_ * width)
      throw FormatError(path + ": " + (truncated ? "truncated" : "has trailing bytes") + ": header says " +
                        std::to_string(num_tokens_) + " tokens of " + std::to_string(width) +
                        " bytes after the " + std::to_string(header_bytes) + "-byte header, but the file has " +
                        std::to_string(payload) + " bytes after it");
    tokens_ = map_ + header_bytes;
    if (verify && format_ == ShardFormat::kGqe) {
      const uint64_t sum = token_checksum(tokens_, num_tokens_ * width);
      if (sum != load_le<uint64_t>(map_ + 32))
        throw FormatError(path + ": corrupted token data (checksum mismatch over " + std::to_string(num_tokens_) +
                          " tokens)");
    }
  } catch (...) {
    ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
    map_ = nullptr;
    throw;
  }
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), map_bytes_);
}

uint32_t TokenShard::token(uint64_t i) const {
  if (i >= num_tokens_)
    throw Error(path_ + ": token index " + std::to_string(i) + " out of range (" + std::to_string(num_tokens_) +
                " tokens)");
  return dtype_ == TokenDtype::kUInt16 ? load_le<uint16_t>(tokens_ + 2 * i) : load_le<uint32_t>(tokens_ + 4 * i);
}

void TokenShard::read(uint64_t begin, uint64_t count, int64_t* out) const {
  if (begin > num_tokens_ || count > num_tokens_ - begin)
    throw Error(path_ + ": token range [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                ") out of range (" + std::to_string(num_tokens_) + " tokens)");
  if (dtype_ == TokenDtype::kUInt16) {
    const unsigned char* p = tokens_ + 2 * begin;
    for (uint64_t i = 0; i < count; ++i) out[i] = load_le<uint16_t>(p + 2 * i);
  } else {
    const unsigned char* p = tokens_ + 4 * begin;
    for (uint64_t i = 0; i < count; ++i) out[i] = load_le<uint32_t>(p + 4 * i);
  }
}

// ---------------------------------------------------------------------------------------------------
// Writer

ShardWriter::ShardWriter(const std::string& path, TokenDtype dtype, uint64_t vocab_size)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())), dtype_(dtype), vocab_size_(vocab_size) {
  if (vocab_size_ > 0 && dtype_ == TokenDtype::kUInt16 && vocab_size_ > 65536)
    throw Error(path + ": vocabulary of " + std::to_string(vocab_size_) + " does not fit uint16 tokens");
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd_ < 0) throw Error(path + ": cannot create temporary file " + tmp_ + ": " + errno_text());
  const std::vector<unsigned char> placeholder(kShardHeaderBytes, 0);
  write_all(fd_, placeholder.data(), placeholder.size(), path_);
  buf_.reserve(1 << 20);
}

ShardWriter::~ShardWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void ShardWriter::append(const int64_t* tokens, size_t n) {
  if (fd_ < 0) throw Error(path_ + ": shard writer already finished");
  const int64_t limit = vocab_size_ > 0 ? static_cast<int64_t>(vocab_size_)
                                        : (dtype_ == TokenDtype::kUInt16 ? 65536 : (int64_t(1) << 32));
  const size_t width = static_cast<size_t>(dtype_);
  for (size_t i = 0; i < n; ++i) {
    const int64_t t = tokens[i];
    if (t < 0 || t >= limit)
      throw Error(path_ + ": token id " + std::to_string(t) + " out of range [0, " + std::to_string(limit) + ")");
    unsigned char b[4];
    if (width == 2)
      store_le<uint16_t>(b, static_cast<uint16_t>(t));
    else
      store_le<uint32_t>(b, static_cast<uint32_t>(t));
    buf_.insert(buf_.end(), b, b + width);
  }
  count_ += n;
  if (buf_.size() >= (1u << 20)) flush();
}

void ShardWriter::flush() {
  checksum_.update(buf_.data(), buf_.size());
  write_all(fd_, buf_.data(), buf_.size(), path_);
  buf_.clear();
}

void ShardWriter::finish() {
  if (fd_ < 0) throw Error(path_ + ": shard writer already finished");
  if (count_ == 0) throw Error(path_ + ": refusing to write an empty token shard (0 tokens)");
  flush();
  const auto header = gqe_header(dtype_, count_, vocab_size_, checksum_.value());
  if (::lseek(fd_, 0, SEEK_SET) != 0) throw Error(path_ + ": seek failed: " + errno_text());
  write_all(fd_, header.data(), header.size(), path_);
  if (::fsync(fd_) != 0) throw Error(path_ + ": fsync failed: " + errno_text());
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(tmp_.c_str());
    throw Error(path_ + ": close failed: " + errno_text());
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string e = errno_text();
    ::unlink(tmp_.c_str());
    throw Error(path_ + ": rename failed: " + e);
  }
}

void write_token_shard(const std::string& path, const std::vector<int64_t>& tokens, TokenDtype dtype,
                       uint64_t vocab_size) {
  ShardWriter w(path, dtype, vocab_size);
  w.append(tokens);
  w.finish();
}

void write_llmc_shard(const std::string& path, const std::vector<int64_t>& tokens, TokenDtype dtype) {
  const uint64_t width = static_cast<uint64_t>(dtype);
  if (tokens.size() >= (uint64_t(1) << 31)) throw Error(path + ": llm.c shards hold fewer than 2^31 tokens");
  std::string bytes(kLlmcHeaderBytes + tokens.size() * width, '\0');
  auto* p = reinterpret_cast<unsigned char*>(bytes.data());
  store_le<int32_t>(p, dtype == TokenDtype::kUInt16 ? kLlmcMagicGpt2 : kLlmcMagicLlama3);
  store_le<int32_t>(p + 4, dtype == TokenDtype::kUInt16 ? 1 : 7);
  store_le<int32_t>(p + 8, static_cast<int32_t>(tokens.size()));
  const uint64_t limit = dtype == TokenDtype::kUInt16 ? 65536 : (uint64_t(1) << 32);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || static_cast<uint64_t>(tokens[i]) >= limit)
      throw Error(path + ": token id " + std::to_string(tokens[i]) + " does not fit the llm.c dtype");
    if (width == 2)
      store_le<uint16_t>(p + kLlmcHeaderBytes + 2 * i, static_cast<uint16_t>(tokens[i]));
    else
      store_le<uint32_t>(p + kLlmcHeaderBytes + 4 * i, static_cast<uint32_t>(tokens[i]));
  }
  fs::write_file_atomic(path, bytes);
}

// ---------------------------------------------------------------------------------------------------

void check_token_ids(const int64_t* tokens, size_t n, int64_t vocab_size, const std::string& source,
                     uint64_t first_index, uint64_t header_bytes, uint64_t bytes_per_token) {
  for (size_t i = 0; i < n; ++i) {
    const int64_t t = tokens[i];
    if (t >= 0 && t < vocab_size) continue;
    const uint64_t at = first_index + i;
    std::string where = "token offset " + std::to_string(at);
    if (bytes_per_token > 0) where += ", byte offset " + std::to_string(header_bytes + at * bytes_per_token);
    throw FormatError(source + ": token id " + std::to_string(t) + " is outside the model's vocabulary of " +
                      std::to_string(vocab_size) + " (" + where +
                      "; were the data and the model made with different tokenizers?)");
  }
}

void check_token_ids(const TokenShard& shard, int64_t vocab_size) {
  const uint64_t header = shard.format() == ShardFormat::kGqe ? kShardHeaderBytes : kLlmcHeaderBytes;
  std::vector<int64_t> buf(size_t(1) << 20);
  for (uint64_t begin = 0; begin < shard.num_tokens(); begin += buf.size()) {
    const uint64_t n = std::min<uint64_t>(buf.size(), shard.num_tokens() - begin);
    shard.read(begin, n, buf.data());
    check_token_ids(buf.data(), size_t(n), vocab_size, shard.path(), begin, header, uint64_t(shard.dtype()));
  }
}

// ---------------------------------------------------------------------------------------------------

std::vector<std::string> resolve_shard_paths(const std::string& spec) {
  namespace stdfs = std::filesystem;
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = spec.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) continue;
    std::error_code ec;
    if (stdfs::is_directory(item, ec)) {
      std::vector<std::string> found;
      for (const auto& e : stdfs::directory_iterator(item)) {
        const std::string ext = e.path().extension().string();
        if (e.is_regular_file() && (ext == ".tok" || ext == ".bin")) found.push_back(e.path().string());
      }
      if (found.empty()) throw Error(item + ": directory holds no token shards (*.tok or *.bin)");
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (item.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      const int rc = ::glob(item.c_str(), 0, nullptr, &g);
      if (rc != 0) {
        ::globfree(&g);
        throw Error(item + ": pattern matches no token shards");
      }
      std::vector<std::string> found(g.gl_pathv, g.gl_pathv + g.gl_pathc);
      ::globfree(&g);
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      if (!stdfs::exists(item, ec)) throw Error(item + ": token shard not found");
      out.push_back(item);
    }
  }
  if (out.empty()) throw Error("no token shards given ('" + spec + "')");
  return out;
}

}  // namespace gqe
