#include "gqe/data/shard_meta.h"

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"
#include "gqe/data/content_identity.h"

namespace gqe {

namespace stdfs = std::filesystem;

namespace {

// What a reader needs from one meta.json.
struct ShardsMeta {
  std::set<std::string> shards;           // file names, train and val
  std::optional<std::string> tokenizer_sha256;
  std::string tokenizer;                  // the spec it was prepared with, as given then ("" if absent)
};

ShardsMeta read_meta(const std::string& path) {
  const nlohmann::json j = parse_json(fs::read_file(path, fs::kSmallFileLimit), path);
  auto bad = [&](const std::string& field, const std::string& what) {
    return FormatError(path + ": field '" + field + "': " + what +
                       " (gqe data prepare writes this file beside the shards it describes: prepare them again, or "
                       "remove it)");
  };
  if (!j.is_object()) throw FormatError(path + ": expected a JSON object (the description of the shards beside it)");
  ShardsMeta m;
  for (const char* split : {"train", "val"}) {
    if (!j.contains(split)) continue;
    const nlohmann::json& s = j.at(split);
    const std::string field = std::string(split) + ".shards";
    if (!s.is_object()) throw bad(split, "expected an object with the split's shards");
    if (!s.contains("shards")) continue;
    if (!s.at("shards").is_array()) throw bad(field, "expected an array of file names");
    for (const auto& n : s.at("shards")) {
      if (!n.is_string()) throw bad(field, "expected an array of file names");
      m.shards.insert(n.get<std::string>());
    }
  }
  if (j.contains("tokenizer_sha256")) {
    if (!j.at("tokenizer_sha256").is_string()) throw bad("tokenizer_sha256", "expected a string");
    m.tokenizer_sha256 = j.at("tokenizer_sha256").get<std::string>();
  }
  if (j.contains("tokenizer") && j.at("tokenizer").is_string()) m.tokenizer = j.at("tokenizer").get<std::string>();
  return m;
}

}  // namespace

void check_shards_tokenizer(const std::vector<std::string>& shard_paths, const TokenizerFiles& files, std::ostream* warn) {
  // Each folder's meta.json once, and this tokenizer's hash only when some meta.json asks for it.
  std::map<std::string, std::optional<ShardsMeta>> metas;
  std::set<std::string> checked;
  std::optional<std::string> mine;
  for (const auto& shard : shard_paths) {
    const stdfs::path p(shard);
    const std::string meta_path = (p.parent_path().empty() ? stdfs::path("meta.json") : p.parent_path() / "meta.json").string();
    auto it = metas.find(meta_path);
    if (it == metas.end())
      it = metas.emplace(meta_path, fs::is_file(meta_path) ? std::optional<ShardsMeta>(read_meta(meta_path)) : std::nullopt).first;
    if (!it->second || !it->second->shards.count(p.filename().string()) || checked.count(meta_path)) continue;
    checked.insert(meta_path);
    const ShardsMeta& m = *it->second;
    const std::string recorded = m.tokenizer.empty() ? "their tokenizer" : m.tokenizer;
    if (!m.tokenizer_sha256) {
      if (warn)
        *warn << "warning: " << meta_path << " records no tokenizer_sha256 (shards from an older gqe data prepare): "
              << "cannot check that " << describe_tokenizer_files(files) << " is " << recorded
              << "; prepare them again to record it\n";
      continue;
    }
    if (!mine) mine = tokenizer_sha256(files);
    if (*m.tokenizer_sha256 == *mine) continue;
    auto shown = [](const std::string& h) { return h == "bytes" ? std::string("the byte tokenizer") : "SHA-256 " + h; };
    throw Error(meta_path + ": field 'tokenizer_sha256': the shards there (" + p.filename().string() +
                ", ...) were written by " + recorded + " (" + shown(*m.tokenizer_sha256) + "), but this run's tokenizer is " +
                describe_tokenizer_files(files) + " (" + shown(*mine) +
                "): another tokenizer, or the same file changed (retrained in place) since gqe data prepare ran; "
                "prepare the shards again with this tokenizer (gqe data prepare --tokenizer ... --force), or use the "
                "tokenizer they were written with");
  }
}

std::string tokenizer_of_shards(const std::vector<std::string>& shard_paths, std::string* missing) {
  if (shard_paths.empty()) return "";
  const stdfs::path shard_dir = stdfs::path(shard_paths.front()).parent_path();
  const std::string meta = (shard_dir / "meta.json").string();
  if (!fs::is_file(meta)) return "";
  std::string t;
  try {
    const nlohmann::json j = parse_json(fs::read_file(meta, fs::kSmallFileLimit), meta);
    if (!j.is_object() || !j.contains("tokenizer") || !j["tokenizer"].is_string()) return "";
    t = j["tokenizer"].get<std::string>();
  } catch (const Error&) {
    return "";  // a damaged meta.json only loses this convenience; the shards are checked on their own
  }
  if (t == "bytes" || t.empty()) return t;
  // A spec may name two files ("vocab.json,merges.txt"): every part must be found from the same base.
  std::vector<std::string> parts;
  for (size_t a = 0;;) {
    const size_t b = t.find(',', a);
    parts.push_back(t.substr(a, b == std::string::npos ? std::string::npos : b - a));
    if (b == std::string::npos) break;
    a = b + 1;
  }
  auto found_from = [&](const stdfs::path& base) -> std::string {
    std::string spec;
    for (const auto& p : parts) {
      const stdfs::path full = stdfs::path(p).is_absolute() || base.empty() ? stdfs::path(p) : base / p;
      if (!fs::exists(full.string())) return "";
      spec += (spec.empty() ? "" : ",") + full.lexically_normal().string();
    }
    return spec;
  };
  std::string searched = "the working directory";
  if (std::string s = found_from({}); !s.empty()) return t;
  const bool relative = !stdfs::path(parts.front()).is_absolute();
  if (relative) {
    std::error_code ec;
    stdfs::path dir = stdfs::absolute(shard_dir, ec);
    for (; !ec && !dir.empty(); dir = dir.parent_path()) {
      if (std::string s = found_from(dir); !s.empty()) return s;
      searched += ", " + dir.string();
      if (dir == dir.parent_path()) break;
    }
  }
  if (missing) *missing = "'" + t + "' (looked for from " + searched + ")";
  return "";
}

}  // namespace gqe
