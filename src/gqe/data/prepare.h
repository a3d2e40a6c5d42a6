// `gqe data prepare`: tokenize text / JSONL corpora into token shards plus a held-out validation split.
//
// Inputs: files ending in .jsonl or .json are JSON Lines (one object per line, the document text in
// `text_field`, FineWeb-Edu style; blank lines skipped); anything else is plain UTF-8 text. A plain text file
// is one document, cut into line-aligned chunks of about `chunk_bytes` so it can be split and parallelised;
// each JSONL line is one document and one chunk.
//
// Split: chunks are numbered u = 0, 1, ... over all inputs in order; chunk u goes to validation iff
// floor((u+1)f + 1/2) > floor(uf + 1/2) (f = val_fraction): exactly one chunk in every 1/f, spread evenly,
// independent of threads and of shard size. The EOS token (if the tokenizer has one) follows each document.
//
// Output: out_dir/train_000000.tok, ... and out_dir/val_000000.tok, ... (gqe shard format, each at most
// shard_tokens tokens) and out_dir/meta.json describing them (with the tokenizer's content hash,
// tokenizer_sha256, which the readers of the shards check: data/shard_meta.h). Tokenization runs on
// `threads` threads; the output does not depend on the thread count.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace gqe {

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string tokenizer = "bytes";  // a tokenizer spec (run_tokenizer.h: bytes, .model, tokenizer.json, ...)
  std::string out_dir;
  std::string text_field = "text";
  double val_fraction = 0.01;
  int64_t shard_tokens = 100'000'000;
  int64_t chunk_bytes = 16 * 1024;
  int threads = 2;
  bool append_eos = true;
  bool force = false;     // replace shards already in out_dir (otherwise that is an error)
  bool progress = false;  // progress bar on stderr
};

struct PrepareResult {
  std::vector<std::string> train_shards, val_shards;
  int64_t train_tokens = 0, val_tokens = 0;
  int64_t documents = 0, chunks = 0, input_bytes = 0;
  int64_t vocab_size = 0;
  double seconds = 0;
};

PrepareResult prepare_data(const PrepareOptions& opt);

}  // namespace gqe
