#include "gqe/data/prepare.h"

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "gqe/core/error.h"
#include "gqe/core/format.h"
#include "gqe/core/fs.h"
#include "gqe/data/run_tokenizer.h"
#include "gqe/data/shard.h"

namespace gqe {

namespace {

namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool is_jsonl(const std::string& path) {
  const std::string ext = stdfs::path(path).extension().string();
  return ext == ".jsonl" || ext == ".json" || ext == ".ndjson";
}

struct Chunk {
  std::string text;
  bool doc_end = false;  // last chunk of a document: EOS follows
  bool val = false;
  std::vector<int64_t> tokens;
};

// Reads the inputs as a stream of chunks, `max_bytes` at a time.
class ChunkReader {
 public:
  ChunkReader(const PrepareOptions& opt) : opt_(opt) {}

  // Appends chunks until about max_bytes of text are collected; false when every input is exhausted.
  bool read_batch(std::vector<Chunk>& out, int64_t max_bytes) {
    int64_t got = 0;
    while (got < max_bytes) {
      if (!in_.is_open()) {
        if (next_file_ >= opt_.inputs.size()) break;
        open(opt_.inputs[next_file_++]);
        continue;
      }
      Chunk c;
      if (jsonl_) {
        std::string line;
        if (!std::getline(in_, line)) {
          in_.close();
          continue;
        }
        ++line_no_;
        bytes_read_ += static_cast<int64_t>(line.size()) + 1;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const std::exception& e) {
          throw FormatError(path_ + ":" + std::to_string(line_no_) + ": invalid JSON: " + e.what());
        }
        if (!j.is_object() || !j.contains(opt_.text_field) || !j[opt_.text_field].is_string())
          throw FormatError(path_ + ":" + std::to_string(line_no_) + ": expected a JSON object with a string field '" +
                            opt_.text_field + "'");
        c.text = j[opt_.text_field].get<std::string>();
        c.doc_end = true;
        ++documents_;
      } else {
        // A line-aligned chunk of about chunk_bytes (a single longer line stays whole); the line breaks are
        // kept exactly as in the file. Byte-level BPE regexes (GPT-2's \s+(?!\S), LLaMA-3's \s*[\r\n]+)
        // split a whitespace run by what follows it, so a cut is made only where the line break is the
        // only whitespace around it ("word\n|word"): there each chunk tokenizes as the whole text does
        // (lines without such a place are cut anyway at 4x chunk_bytes, e.g. CRLF files).
        std::string line;
        auto is_space = [](int ch) { return ch != std::char_traits<char>::eof() && std::isspace(ch); };
        while (std::getline(in_, line)) {
          c.text += line;
          if (!in_.eof()) c.text += '\n';
          const auto size = static_cast<int64_t>(c.text.size());
          if (size < opt_.chunk_bytes) continue;
          const int next = in_.peek();
          const bool clean = !line.empty() && !is_space(static_cast<unsigned char>(line.back())) && !is_space(next);
          if (next == std::char_traits<char>::eof() || clean || size >= 4 * opt_.chunk_bytes) break;
        }
        bytes_read_ += static_cast<int64_t>(c.text.size());
        if (in_.eof() || in_.peek() == std::char_traits<char>::eof()) {
          in_.close();
          if (c.text.empty()) continue;  // an empty file (or nothing left) is no document
          c.doc_end = true;
          ++documents_;
        }
      }
      const double f = opt_.val_fraction;
      const uint64_t u = chunks_++;
      c.val = f > 0 && std::floor((double(u) + 1) * f + 0.5) > std::floor(double(u) * f + 0.5);
      got += static_cast<int64_t>(c.text.size());
      out.push_back(std::move(c));
    }
    return !out.empty();
  }

  int64_t bytes_read() const { return bytes_read_; }
  int64_t documents() const { return documents_; }
  int64_t chunks() const { return static_cast<int64_t>(chunks_); }

 private:
  void open(const std::string& p) {
    path_ = p;
    in_ = std::ifstream(p, std::ios::binary);
    if (!in_) throw Error(p + ": cannot open input");
    jsonl_ = is_jsonl(p);
    line_no_ = 0;
  }

  const PrepareOptions& opt_;
  std::ifstream in_;
  std::string path_;
  bool jsonl_ = false;
  size_t next_file_ = 0;
  int64_t line_no_ = 0, bytes_read_ = 0, documents_ = 0;
  uint64_t chunks_ = 0;
};

// Writes one split as a sequence of shards of at most shard_tokens tokens.
class SplitWriter {
 public:
  SplitWriter(std::string dir, std::string prefix, int64_t shard_tokens, TokenDtype dtype, uint64_t vocab)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), shard_tokens_(shard_tokens), dtype_(dtype), vocab_(vocab) {}

  void append(const std::vector<int64_t>& t) {
    size_t i = 0;
    while (i < t.size()) {
      if (!w_) {
        char name[64];
        std::snprintf(name, sizeof name, "%s_%06zu.tok", prefix_.c_str(), paths_.size());
        paths_.push_back(dir_ + "/" + name);
        w_ = std::make_unique<ShardWriter>(paths_.back(), dtype_, vocab_);
      }
      const size_t room = static_cast<size_t>(shard_tokens_ - static_cast<int64_t>(w_->num_tokens()));
      const size_t n = std::min(room, t.size() - i);
      w_->append(t.data() + i, n);
      i += n;
      total_ += static_cast<int64_t>(n);
      if (static_cast<int64_t>(w_->num_tokens()) == shard_tokens_) close();
    }
  }
  void close() {
    if (w_) w_->finish();
    w_.reset();
  }
  const std::vector<std::string>& paths() const { return paths_; }
  int64_t total() const { return total_; }

 private:
  std::string dir_, prefix_;
  int64_t shard_tokens_;
  TokenDtype dtype_;
  uint64_t vocab_;
  std::unique_ptr<ShardWriter> w_;
  std::vector<std::string> paths_;
  int64_t total_ = 0;
};

void progress_line(int64_t done, int64_t total, int64_t tokens, double secs, bool final) {
  const double frac = total > 0 ? std::min(1.0, double(done) / double(total)) : 1.0;
  const int width = 30, filled = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), ' ');
  const double rate = secs > 0 ? double(done) / secs : 0;
  const double eta = rate > 0 ? double(total - done) / rate : 0;
  std::fprintf(stderr, "\r[%s] %3.0f%% %sB/%sB  %s tokens  %sB/s  ETA %.0fs  ", bar.c_str(), 100 * frac,
               human_number(double(done)).c_str(), human_number(double(total)).c_str(),
               human_number(double(tokens)).c_str(), human_number(rate).c_str(), final ? 0.0 : eta);
  if (final) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

}  // namespace

PrepareResult prepare_data(const PrepareOptions& opt) {
  const auto t0 = Clock::now();
  if (opt.inputs.empty()) throw Error("data prepare: no input files");
  if (opt.out_dir.empty()) throw Error("data prepare: no output directory");
  if (!(opt.val_fraction >= 0 && opt.val_fraction < 1))
    throw Error("data prepare: --val-fraction must be in [0, 1), got " + std::to_string(opt.val_fraction));
  if (opt.shard_tokens < 1) throw Error("data prepare: --shard-tokens must be positive");
  if (opt.chunk_bytes < 1) throw Error("data prepare: --chunk-bytes must be positive");
  if (opt.threads < 1) throw Error("data prepare: --threads must be positive");
  int64_t total_bytes = 0;
  for (const auto& p : opt.inputs) {
    std::error_code ec;
    if (!stdfs::is_regular_file(p, ec)) throw Error(p + ": input not found (or not a regular file)");
    total_bytes += static_cast<int64_t>(stdfs::file_size(p));
  }
  fs::mkdirs(opt.out_dir);
  std::vector<stdfs::path> existing;
  for (const auto& e : stdfs::directory_iterator(opt.out_dir))
    if (e.path().extension() == ".tok") existing.push_back(e.path());
  if (!existing.empty()) {
    if (!opt.force)
      throw Error(opt.out_dir + ": already holds token shards (" + existing.front().filename().string() +
                  ", ...); pass --force to replace them");
    for (const auto& p : existing) stdfs::remove(p);
    stdfs::remove(stdfs::path(opt.out_dir) / "meta.json");
  }

  std::unique_ptr<Tokenizer> tok = load_tokenizer(opt.tokenizer);
  const uint64_t vocab = static_cast<uint64_t>(tok->vocab_size());
  const TokenDtype dtype = dtype_for_vocab(vocab);
  const int64_t eos = opt.append_eos ? tok->eos_id() : -1;
  SplitWriter train(opt.out_dir, "train", opt.shard_tokens, dtype, vocab);
  SplitWriter val(opt.out_dir, "val", opt.shard_tokens, dtype, vocab);

  ChunkReader reader(opt);
  std::vector<Chunk> batch;
  const int64_t batch_bytes = std::max<int64_t>(opt.chunk_bytes * opt.threads * 4, 4 << 20);
  auto last_print = Clock::now();
  while (true) {
    batch.clear();
    if (!reader.read_batch(batch, batch_bytes)) break;
    // Each thread takes every threads-th chunk; writing happens afterwards, in chunk order.
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(static_cast<size_t>(opt.threads));
    for (int t = 0; t < opt.threads; ++t)
      pool.emplace_back([&, t]() {
        try {
          for (size_t i = static_cast<size_t>(t); i < batch.size(); i += static_cast<size_t>(opt.threads)) {
            batch[i].tokens = tok->encode(batch[i].text);
            if (batch[i].doc_end && eos >= 0) batch[i].tokens.push_back(eos);
          }
        } catch (...) {
          errors[static_cast<size_t>(t)] = std::current_exception();
        }
      });
    for (auto& th : pool) th.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    for (auto& c : batch) (c.val ? val : train).append(c.tokens);
    const auto now = Clock::now();
    if (opt.progress && reader.bytes_read() < total_bytes &&
        std::chrono::duration<double>(now - last_print).count() > 0.25) {
      progress_line(reader.bytes_read(), total_bytes, train.total() + val.total(),
                    std::chrono::duration<double>(now - t0).count(), false);
      last_print = now;
    }
  }
  train.close();
  val.close();
  if (train.total() == 0) throw Error("data prepare: the inputs produced no training tokens");
  if (opt.val_fraction > 0 && val.total() == 0)
    throw Error("data prepare: the validation split is empty (" + std::to_string(reader.chunks()) +
                " chunks at --val-fraction " + std::to_string(opt.val_fraction) +
                "); use a larger --val-fraction or a smaller --chunk-bytes");

  PrepareResult r;
  r.train_shards = train.paths();
  r.val_shards = val.paths();
  r.train_tokens = train.total();
  r.val_tokens = val.total();
  r.documents = reader.documents();
  r.chunks = reader.chunks();
  r.input_bytes = total_bytes;
  r.vocab_size = static_cast<int64_t>(vocab);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (opt.progress) progress_line(total_bytes, total_bytes, r.train_tokens + r.val_tokens, r.seconds, true);

  nlohmann::json meta;
  meta["format"] = "gqe token shards v1";
  meta["tokenizer"] = tok->name();
  meta["vocab_size"] = vocab;
  meta["eos_id"] = eos;
  meta["dtype"] = dtype == TokenDtype::kUInt16 ? "uint16" : "uint32";
  meta["inputs"] = opt.inputs;
  meta["text_field"] = opt.text_field;
  meta["val_fraction"] = opt.val_fraction;
  meta["chunk_bytes"] = opt.chunk_bytes;
  meta["documents"] = r.documents;
  meta["chunks"] = r.chunks;
  meta["input_bytes"] = r.input_bytes;
  auto names = [](const std::vector<std::string>& v) {
    std::vector<std::string> out;
    for (const auto& p : v) out.push_back(stdfs::path(p).filename().string());
    return out;
  };
  meta["train"] = {{"shards", names(r.train_shards)}, {"tokens", r.train_tokens}};
  meta["val"] = {{"shards", names(r.val_shards)}, {"tokens", r.val_tokens}};
  fs::write_file_atomic(opt.out_dir + "/meta.json", meta.dump(2) + "\n");
  return r;
}

}  // namespace gqe
