#include "gqe/data/prepare.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>

#include "gqe/core/error.h"
#include "gqe/core/format.h"
#include "gqe/core/fs.h"
#include "gqe/core/utf8.h"
#include "gqe/data/content_identity.h"
#include "gqe/tokenizers/run_tokenizer.h"
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
    fs::check_regular_file(p);  // streamed, so no size limit; but /dev/zero or a FIFO would never end
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

// The size of all inputs; throws before any work when one is missing, unreadable, or has a name that
// meta.json (which records the input names) cannot hold.
int64_t check_inputs(const std::vector<std::string>& inputs) {
  int64_t total = 0;
  for (const auto& p : inputs) {
    const std::string shown = escape_invalid_utf8(p);
    std::error_code ec;
    if (!stdfs::is_regular_file(p, ec)) throw Error(shown + ": input not found (or not a regular file)");
    if (!std::ifstream(p, std::ios::binary)) throw Error(shown + ": cannot read input: " + std::strerror(errno));
    if (!is_valid_utf8(p))
      throw Error(shown + ": input file name is not valid UTF-8 (meta.json records the input names); rename the file");
    total += static_cast<int64_t>(stdfs::file_size(p, ec));
  }
  return total;
}

// The cores this process may run on (its CPU affinity; at least 1).
int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// --threads capped at the core count: more threads than cores only add switching and per-thread stacks.
int usable_threads(int requested) {
  const int cores = available_cores();
  if (requested <= cores) return requested;
  std::fprintf(stderr, "data prepare: warning: --threads %d is more than the %d core(s) available; using %d\n",
               requested, cores, cores);
  return cores;
}

// Runs lane(0) ... lane(n - 1) on up to n threads. A thread that cannot be created (too many threads,
// an address-space limit) is no crash: its lane runs on the calling thread instead, after a warning
// (once: `warned`).
void run_lanes(int n, const std::function<void(int)>& lane, bool& warned) {
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(n));
  int started = 0;
  try {
    for (; started < n; ++started) pool.emplace_back(lane, started);
  } catch (const std::exception& e) {  // std::system_error (EAGAIN), or std::bad_alloc for its state
    if (!warned)
      std::fprintf(stderr, "data prepare: warning: cannot start worker thread %d of %d (%s); continuing with %d\n",
                   started + 1, n, e.what(), std::max(1, started));
    warned = true;
  }
  for (int t = started; t < n; ++t) lane(t);
  for (auto& th : pool) th.join();
}

bool is_dataset_file(const stdfs::path& p) { return p.extension() == ".tok" || p.filename() == "meta.json"; }

// out_dir must be a directory (or not exist); a dataset already there needs --force.
void check_output_dir(const PrepareOptions& opt) {
  std::error_code ec;
  if (!stdfs::exists(opt.out_dir, ec)) return;
  if (!stdfs::is_directory(opt.out_dir, ec)) throw Error(opt.out_dir + ": output exists and is not a directory");
  for (const auto& e : stdfs::directory_iterator(opt.out_dir, ec))
    if (e.path().extension() == ".tok" && !opt.force)
      throw Error(opt.out_dir + ": already holds token shards (" + e.path().filename().string() +
                  ", ...); pass --force to replace them");
  if (ec) throw Error(opt.out_dir + ": cannot list the output directory: " + ec.message());
}

// The staging folder of process `pid` for output folder `name` in `parent`: hidden, beside the output.
std::string staging_dir(const stdfs::path& parent, const std::string& name, long pid) {
  return (parent / ("." + name + ".prepare.tmp." + std::to_string(pid))).string();
}

// Staging folders left by a prepare that was killed (its process is gone) are removed.
void remove_stale_staging(const stdfs::path& parent, const std::string& name) {
  const std::string prefix = "." + name + ".prepare.tmp.";
  for (const auto& entry : fs::list_dir(parent.string())) {
    if (entry.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid = entry.substr(prefix.size());
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) fs::remove_tree((parent / entry).string());
  }
}

void rename_or_throw(const stdfs::path& from, const stdfs::path& to) {
  std::error_code ec;
  stdfs::rename(from, to, ec);
  if (ec) throw Error(to.string() + ": cannot move " + from.string() + " there: " + ec.message());
}

// Replaces the dataset in out_dir by the one complete in `staging`. Other files in out_dir stay. The old
// meta.json goes first and the new one comes last, so a dataset with meta.json is always a whole one.
void install_dataset(const std::string& staging, const std::string& out_dir) {
  std::error_code ec;
  if (!stdfs::exists(out_dir, ec)) {
    rename_or_throw(staging, out_dir);
    fs::fsync_dir(stdfs::absolute(out_dir).parent_path().string());
    return;
  }
  const stdfs::path replaced = stdfs::path(staging) / ".replaced";
  fs::mkdirs(replaced.string());
  const stdfs::path out(out_dir);
  if (fs::exists((out / "meta.json").string())) rename_or_throw(out / "meta.json", replaced / "meta.json");
  for (const auto& name : fs::list_dir(out_dir))
    if (is_dataset_file(name)) rename_or_throw(out / name, replaced / name);
  for (const auto& name : fs::list_dir(staging))
    if (stdfs::path(name).extension() == ".tok") rename_or_throw(stdfs::path(staging) / name, out / name);
  rename_or_throw(stdfs::path(staging) / "meta.json", out / "meta.json");
  fs::fsync_dir(out_dir);
  fs::remove_tree(staging);
}

// Tokenizes the inputs into `dir` (shards and meta.json).
PrepareResult prepare_into(const PrepareOptions& opt, const Tokenizer& tok, const std::string& tok_sha256, int threads,
                           int64_t total_bytes, const std::string& dir, Clock::time_point t0) {
  const uint64_t vocab = static_cast<uint64_t>(tok.vocab_size());
  const TokenDtype dtype = dtype_for_vocab(vocab);
  const int64_t eos = opt.append_eos ? tok.eos_id() : -1;
  SplitWriter train(dir, "train", opt.shard_tokens, dtype, vocab);
  SplitWriter val(dir, "val", opt.shard_tokens, dtype, vocab);

  ChunkReader reader(opt);
  std::vector<Chunk> batch;
  const int64_t batch_bytes = std::max<int64_t>(opt.chunk_bytes * threads * 4, 4 << 20);
  auto last_print = Clock::now();
  bool thread_warning = false;
  while (true) {
    batch.clear();
    if (!reader.read_batch(batch, batch_bytes)) break;
    // Lane t takes every threads-th chunk; writing happens afterwards, in chunk order.
    std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
    run_lanes(threads, [&](int t) {
      try {
        for (size_t i = static_cast<size_t>(t); i < batch.size(); i += static_cast<size_t>(threads)) {
          batch[i].tokens = tok.encode(batch[i].text);
          if (batch[i].doc_end && eos >= 0) batch[i].tokens.push_back(eos);
        }
      } catch (...) {
        errors[static_cast<size_t>(t)] = std::current_exception();
      }
    }, thread_warning);
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
  meta["tokenizer"] = tok.name();
  // The path above may later hold another tokenizer (one retrained in place): readers check this hash.
  meta["tokenizer_sha256"] = tok_sha256;
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
  fs::write_file_atomic(dir + "/meta.json", meta.dump(2) + "\n");
  return r;
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
  if (!is_valid_utf8(opt.text_field))
    throw Error("data prepare: --text-field '" + escape_invalid_utf8(opt.text_field) + "' is not valid UTF-8");
  const int64_t total_bytes = check_inputs(opt.inputs);
  const int threads = usable_threads(opt.threads);
  check_output_dir(opt);

  const TokenizerFiles tok_files = resolve_tokenizer_files(opt.tokenizer);
  std::unique_ptr<Tokenizer> tok = load_tokenizer(tok_files);
  const std::string tok_sha256 = tokenizer_sha256(tok_files);
  if (!is_valid_utf8(tok->name()))
    throw Error("data prepare: tokenizer path '" + escape_invalid_utf8(tok->name()) +
                "' is not valid UTF-8 (meta.json records it); rename the file");

  // The new dataset is built in a staging folder beside out_dir and swapped in only when complete: a
  // failure (bad input, full disk, ...) leaves the previous dataset as it was and no partial shards.
  stdfs::path out_path = stdfs::absolute(opt.out_dir).lexically_normal();
  if (!out_path.has_filename()) out_path = out_path.parent_path();  // "dir/"
  const stdfs::path parent = out_path.parent_path();
  fs::mkdirs(parent.string());
  remove_stale_staging(parent, out_path.filename().string());
  const std::string staging = staging_dir(parent, out_path.filename().string(), ::getpid());
  fs::remove_tree(staging);
  fs::mkdirs(staging);
  try {
    PrepareResult r = prepare_into(opt, *tok, tok_sha256, threads, total_bytes, staging, t0);
    install_dataset(staging, out_path.string());
    for (auto* v : {&r.train_shards, &r.val_shards})
      for (auto& p : *v) p = (stdfs::path(opt.out_dir) / stdfs::path(p).filename()).string();
    return r;
  } catch (...) {
    fs::remove_tree(staging);
    throw;
  }
}

}  // namespace gqe
