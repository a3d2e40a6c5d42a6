#include "gqe/tokenizers/run_tokenizer.h"

#include <filesystem>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"
#include "gqe/tokenizers/bpe_tokenizer.h"
#include "gqe/tokenizers/sentencepiece.h"

namespace gqe {

namespace stdfs = std::filesystem;

const char* const kTokenizerRecordFile = "tokenizer_info.json";

const char* to_string(TokenizerKind k) {
  switch (k) {
    case TokenizerKind::kBytes: return "bytes";
    case TokenizerKind::kSentencePiece: return "sentencepiece";
    case TokenizerKind::kBpe: return "bpe";
  }
  return "?";
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// NAME-vocab.json <-> NAME-merges.txt (plain vocab.json <-> merges.txt), in the same directory.
std::string partner(const std::string& path, const std::string& from, const std::string& to) {
  return path.substr(0, path.size() - from.size()) + to;
}

TokenizerFiles gpt2_pair(const std::string& vocab, const std::string& merges, const std::string& spec) {
  for (const auto& p : {vocab, merges})
    if (!fs::is_file(p))
      throw Error(spec + ": GPT-2 tokenizer needs vocab.json and merges.txt side by side; " + p + " not found");
  return {TokenizerKind::kBpe, {vocab, merges}};
}

}  // namespace

TokenizerFiles resolve_tokenizer_files(const std::string& spec) {
  if (spec.empty() || spec == "bytes") return {};
  if (fs::is_directory(spec)) {
    const std::string d = spec.back() == '/' ? spec : spec + "/";
    if (fs::is_file(d + "tokenizer.json")) return {TokenizerKind::kBpe, {d + "tokenizer.json"}};
    if (fs::is_file(d + "vocab.json")) return gpt2_pair(d + "vocab.json", d + "merges.txt", spec);
    if (fs::is_file(d + "tokenizer.model")) return {TokenizerKind::kSentencePiece, {d + "tokenizer.model"}};
    throw Error(spec + ": directory holds no tokenizer (expected tokenizer.json, vocab.json + merges.txt or "
                       "tokenizer.model)");
  }
  if (ends_with(spec, "vocab.json")) return gpt2_pair(spec, partner(spec, "vocab.json", "merges.txt"), spec);
  if (ends_with(spec, "merges.txt")) return gpt2_pair(partner(spec, "merges.txt", "vocab.json"), spec, spec);
  if (!fs::is_file(spec))
    throw Error(spec + ": tokenizer not found (expected \"bytes\", a SentencePiece .model, a Hugging Face "
                       "tokenizer.json, GPT-2's vocab.json + merges.txt, or a directory holding one of them)");
  if (ends_with(spec, ".json")) return {TokenizerKind::kBpe, {spec}};
  return {TokenizerKind::kSentencePiece, {spec}};
}

std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerFiles& f) {
  switch (f.kind) {
    case TokenizerKind::kBytes: return std::make_unique<ByteTokenizer>();
    case TokenizerKind::kSentencePiece: return std::make_unique<SentencePieceTokenizer>(f.paths.at(0));
    case TokenizerKind::kBpe:
      if (f.paths.size() == 2) return BpeTokenizer::from_vocab_merges(f.paths[0], f.paths[1]);
      return BpeTokenizer::from_tokenizer_json(f.paths.at(0));
  }
  throw Error("unknown tokenizer kind");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec) {
  return load_tokenizer(resolve_tokenizer_files(spec));
}

void record_run_tokenizer(const std::string& run_dir, const std::string& spec) {
  const TokenizerFiles f = resolve_tokenizer_files(spec);
  const auto tok = load_tokenizer(f);  // a broken file fails here, before anything is written
  std::vector<std::string> names;
  if (f.kind == TokenizerKind::kSentencePiece) names = {"tokenizer.model"};
  else if (f.kind == TokenizerKind::kBpe) names = f.paths.size() == 2 ? std::vector<std::string>{"vocab.json", "merges.txt"}
                                                                       : std::vector<std::string>{"tokenizer.json"};
  fs::mkdirs(run_dir);
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string dst = run_dir + "/" + names[i];
    std::error_code ec;
    if (stdfs::exists(dst) && stdfs::equivalent(f.paths[i], dst, ec)) continue;
    fs::write_file_atomic(dst, fs::read_file(f.paths[i]));
  }
  nlohmann::ordered_json rec;
  rec["kind"] = to_string(f.kind);
  rec["files"] = names;
  rec["vocab_size"] = tok->vocab_size();
  rec["eos_id"] = tok->eos_id();
  rec["source"] = spec.empty() ? "bytes" : spec;
  fs::write_file_atomic(run_dir + "/" + kTokenizerRecordFile, rec.dump(2) + "\n");
}

namespace {

// Reads DIR/tokenizer_info.json into files inside DIR.
TokenizerFiles read_record(const std::string& dir) {
  const std::string path = dir + "/" + kTokenizerRecordFile;
  const nlohmann::json j = parse_json(fs::read_file(path, fs::kSmallFileLimit), path);
  auto bad = [&](const std::string& field, const std::string& what) {
    return FormatError(path + ": field '" + field + "': " + what);
  };
  if (!j.is_object()) throw FormatError(path + ": expected a JSON object");
  if (!j.contains("kind") || !j["kind"].is_string()) throw bad("kind", "expected \"bytes\", \"sentencepiece\" or \"bpe\"");
  const std::string kind = j["kind"].get<std::string>();
  TokenizerFiles f;
  size_t want = 0;
  if (kind == "bytes") f.kind = TokenizerKind::kBytes;
  else if (kind == "sentencepiece") f.kind = TokenizerKind::kSentencePiece, want = 1;
  else if (kind == "bpe") f.kind = TokenizerKind::kBpe, want = 2;
  else throw bad("kind", "'" + truncate_for_message(kind) + "': expected \"bytes\", \"sentencepiece\" or \"bpe\"");
  if (want > 0) {
    if (!j.contains("files") || !j["files"].is_array() || j["files"].empty() || j["files"].size() > want)
      throw bad("files", "expected the tokenizer's file names in this directory");
    for (const auto& n : j["files"]) {
      if (!n.is_string() || n.get<std::string>().empty() || n.get<std::string>().find('/') != std::string::npos)
        throw bad("files", "expected plain file names in this directory");
      const std::string p = dir + "/" + n.get<std::string>();
      if (!fs::exists(p)) throw Error(path + ": the recorded tokenizer file " + p + " is missing");
      // A run folder may come from elsewhere: its record must not pull in files from outside it (a link
      // to another user's file, a device) as the tokenizer.
      fs::regular_file_inside(dir, n.get<std::string>());
      f.paths.push_back(p);
    }
  }
  return f;
}

}  // namespace

TokenizerFiles run_tokenizer_files(const std::string& dir, int64_t model_vocab) {
  std::vector<std::string> dirs = {dir};
  // RUN/checkpoints/step-N: the record is in RUN.
  const stdfs::path p = stdfs::path(dir).lexically_normal();
  const stdfs::path parent = (p.has_filename() ? p : p.parent_path()).parent_path();
  if (parent.filename() == "checkpoints") dirs.push_back(parent.parent_path().string());
  for (const auto& d : dirs) {
    if (fs::is_file(d + "/" + kTokenizerRecordFile)) return read_record(d);
    if (fs::is_file(d + "/tokenizer.model")) {
      fs::regular_file_inside(d, "tokenizer.model");  // as for a recorded file (read_record)
      return {TokenizerKind::kSentencePiece, {d + "/tokenizer.model"}};
    }
  }
  if (model_vocab < 0 || model_vocab == 256) return {};
  throw Error(dir + ": no tokenizer is recorded (no " + kTokenizerRecordFile + ") and the model's vocab_size " +
              std::to_string(model_vocab) + " is not the byte tokenizer's 256: pass --tokenizer (the file the model "
              "was trained with)");
}

std::unique_ptr<Tokenizer> load_run_tokenizer(const std::string& dir, int64_t model_vocab,
                                              const std::string& override_spec) {
  auto tok = override_spec.empty() ? load_tokenizer(run_tokenizer_files(dir, model_vocab)) : load_tokenizer(override_spec);
  if (model_vocab >= 0 && tok->vocab_size() > model_vocab)
    throw Error("tokenizer '" + tok->name() + "' has " + std::to_string(tok->vocab_size()) +
                " ids but the checkpoint's vocab_size is " + std::to_string(model_vocab) + " (" + dir +
                "): the model was trained with another tokenizer");
  return tok;
}

}  // namespace gqe
