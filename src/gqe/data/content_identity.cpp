#include "gqe/data/content_identity.h"

#include <cstring>
#include <fstream>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/sha256.h"
#include "gqe/data/shard.h"

namespace gqe {

std::string tokenizer_sha256(const TokenizerFiles& files) {
  if (files.paths.empty()) return "bytes";
  std::string out;
  for (const auto& p : files.paths) out += (out.empty() ? "" : " ") + sha256_file(p);
  return out;
}

std::string describe_tokenizer_files(const TokenizerFiles& files) {
  if (files.paths.empty()) return "bytes";
  std::string out;
  for (const auto& p : files.paths) out += (out.empty() ? "" : " + ") + p;
  return out;
}

namespace {

// The 64-byte header of a gqe shard at `path`, or "" when the file does not start with one.
std::string gqe_shard_header(const std::string& path) {
  const uint64_t size = fs::check_regular_file(path);
  if (size < kShardHeaderBytes) return "";
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  std::string header(kShardHeaderBytes, '\0');
  f.read(header.data(), std::streamsize(header.size()));
  if (f.gcount() != std::streamsize(header.size())) throw Error(path + ": read error");
  return std::memcmp(header.data(), kShardMagic, sizeof kShardMagic) == 0 ? header : "";
}

}  // namespace

std::string data_sha256(const std::vector<std::string>& paths) {
  static const char* kDigits = "0123456789abcdef";
  std::string list;
  for (const auto& p : paths) {
    const std::string header = gqe_shard_header(p);
    if (header.empty()) {
      list += "sha256 " + sha256_file(p) + "\n";
      continue;
    }
    list += "gqe-shard-header ";
    for (unsigned char c : header) {
      list.push_back(kDigits[c >> 4]);
      list.push_back(kDigits[c & 15]);
    }
    list += "\n";
  }
  return sha256_hex(list);
}

}  // namespace gqe
