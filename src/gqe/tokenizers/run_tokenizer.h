// Which tokenizer text goes through: named on the command line (load_tokenizer), or the one a run was
// trained with (load_run_tokenizer). `gqe train` records its tokenizer in the run directory
// (record_run_tokenizer: the tokenizer's files copied beside config.json + a small record), and every
// command that reads a checkpoint (generate, eval, routes, export) resolves it here.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gqe/tokenizers/tokenizer.h"

namespace gqe {

enum class TokenizerKind { kBytes, kSentencePiece, kBpe };
const char* to_string(TokenizerKind k);  // "bytes", "sentencepiece", "bpe"

// A tokenizer's files: none (bytes); a SentencePiece .model; a Hugging Face tokenizer.json; or GPT-2's
// vocab.json + merges.txt (in that order).
struct TokenizerFiles {
  TokenizerKind kind = TokenizerKind::kBytes;
  std::vector<std::string> paths;
};

// What a command-line tokenizer spec names: "bytes" (or ""); a SentencePiece .model; a tokenizer.json;
// GPT-2's vocab.json (merges.txt beside it: NAME-vocab.json pairs with NAME-merges.txt) or merges.txt;
// or a directory holding tokenizer.json, vocab.json + merges.txt or tokenizer.model. Throws gqe::Error
// when the files are missing.
TokenizerFiles resolve_tokenizer_files(const std::string& spec);
std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerFiles& files);
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec);

// The record's file name inside a run or checkpoint directory.
extern const char* const kTokenizerRecordFile;  // "tokenizer_info.json"

// Makes `spec` the tokenizer of run_dir: copies its files there (tokenizer.model, tokenizer.json or
// vocab.json + merges.txt) and writes run_dir/tokenizer_info.json {"kind", "files", "vocab_size",
// "eos_id", "source"}. Atomic per file; a spec already inside run_dir is left in place.
void record_run_tokenizer(const std::string& run_dir, const std::string& spec);

// The files of the tokenizer recorded for `dir` (a run directory, or RUN/checkpoints/step-N, whose run
// directory holds the record): the record; else a tokenizer.model beside config.json (runs from before the
// record); else, for a model whose vocab_size is 256 (model_vocab, -1: unknown), bytes. Anything else is
// an error naming the directory and asking for --tokenizer.
TokenizerFiles run_tokenizer_files(const std::string& dir, int64_t model_vocab);

// The tokenizer to use with the checkpoint in `dir`: `override_spec` when not empty (--tokenizer), else
// run_tokenizer_files(dir). A tokenizer with more ids than model_vocab is an error naming both.
std::unique_ptr<Tokenizer> load_run_tokenizer(const std::string& dir, int64_t model_vocab,
                                              const std::string& override_spec = "");

}  // namespace gqe
