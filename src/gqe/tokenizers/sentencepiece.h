// SentencePiece tokenizer (BPE or unigram .model files), through the dlopen'd shim libgqe_spm.so.
//
// The shim is found, in order, at: $GQE_SPM_LIB; next to the running executable; ../lib/ beside it; the
// path CMake baked in at build time; then the dynamic loader's search path (plain "libgqe_spm.so").
// See spm_c_api.h for why SentencePiece is never linked into a libtorch process.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gqe/tokenizers/tokenizer.h"

namespace gqe {

struct SpmLibrary;  // the loaded shim's function table

// Loads (once per process) and returns the shim; throws gqe::Error listing every path tried.
const SpmLibrary& spm_library();
std::string spm_library_path();  // where it was found (loads it)

struct SpmTrainOptions {
  std::vector<std::string> inputs;  // plain-text files, one sentence/paragraph per line
  std::string model_prefix;         // writes <prefix>.model and <prefix>.vocab
  int64_t vocab_size = 4096;
  std::string model_type = "bpe";   // bpe | unigram
  int num_threads = 2;
  int64_t input_sentence_size = 0;  // > 0: train on a random sample of this many lines
  double character_coverage = 0.9995;
  std::vector<std::string> extra;   // further raw SentencePiece flags, "key=value"
};

// Trains with settings chosen for exact round trips: identity normalisation, whitespace kept, byte fallback
// (so any UTF-8 input encodes without <unk>), no dummy prefix, digits split, unk=0 bos=1 eos=2, no pad.
// Throws gqe::Error with SentencePiece's message on failure.
void train_sentencepiece(const SpmTrainOptions& opt);

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  // Thread-safe (SentencePiece encoding is const); used from several threads by `gqe data prepare`.
  std::vector<int64_t> encode(const std::string& text) const override;
  // Ids outside the vocabulary (a model whose embedding is padded past it) decode as U+FFFD.
  std::string decode(const std::vector<int64_t>& tokens) const override;
  int64_t vocab_size() const override { return piece_size_; }
  int64_t eos_id() const override { return eos_; }
  int64_t bos_id() const { return bos_; }
  std::string name() const override { return path_; }

 private:
  const SpmLibrary& lib_;
  void* model_ = nullptr;  // gqe_spm*
  std::string path_;
  int64_t piece_size_ = 0, eos_ = -1, bos_ = -1;
};

}  // namespace gqe
