// Byte-level BPE tokenizer (GPT-2, LLaMA-3 and the many models that copy them), read from a Hugging Face
// `tokenizer.json` or from GPT-2's `vocab.json` + `merges.txt`, encoding exactly as Hugging Face
// `tokenizers` does (tests/tokenizers/bpe_tokenizer_test.cpp compares the two token for token):
//   1. added tokens (e.g. <|endoftext|>) are cut out of the text first, leftmost-longest;
//   2. the pre-tokenizer splits the rest: Split (the tokenizer's own regex, compiled by PCRE2 with Unicode
//      properties) and ByteLevel (GPT-2's regex unless use_regex is false), alone or in a Sequence;
//   3. each piece is merged by BPE over its bytes, lowest merge rank first, leftmost on ties.
// Vocabulary strings use GPT-2's byte-to-unicode alphabet; they are turned into raw bytes on load, so
// decode() returns the exact bytes (one token may be part of a UTF-8 character: streaming output works).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "gqe/tokenizers/tokenizer.h"
#include "gqe/tokenizers/unicode_regex.h"

namespace gqe {

// GPT-2's pre-tokenization regex (the ByteLevel pre-tokenizer's with use_regex true).
extern const char* const kGpt2PretokenizerRegex;

// Raw bytes spelled in GPT-2's byte-to-unicode alphabet, as vocab.json and tokenizer.json spell tokens.
std::string bytes_to_byte_level(const std::string& raw);

class BpeTokenizer : public Tokenizer {
 public:
  // A Hugging Face tokenizer.json whose model is BPE over a ByteLevel pre-tokenizer. Unsupported parts
  // (a normalizer, BPE dropout, other pre-tokenizers) and malformed fields throw gqe::FormatError naming
  // the file and field.
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::string& path);
  // GPT-2's vocab.json + merges.txt: GPT-2's pre-tokenizer; <|endoftext|> (if in the vocabulary) is special.
  static std::unique_ptr<BpeTokenizer> from_vocab_merges(const std::string& vocab_path, const std::string& merges_path);

  ~BpeTokenizer() override;
  // Thread-safe; each thread keeps its own cache of piece -> ids.
  std::vector<int64_t> encode(const std::string& text) const override;
  // The tokens' bytes; added tokens as their text; ids outside the vocabulary as U+FFFD.
  std::string decode(const std::vector<int64_t>& tokens) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  // <|endoftext|> (GPT-2), <|end_of_text|> (LLaMA-3), </s> or <eos>, whichever the vocabulary has first.
  int64_t eos_id() const override { return eos_; }
  std::string name() const override { return path_; }

  // The id of an added token or vocabulary entry given as text (raw bytes), or -1.
  int64_t token_id(const std::string& text) const;

  // Implementation types (bpe_tokenizer.cpp).
  struct PreStep;
  struct AddedToken;
  struct AddedGroup;

 private:
  BpeTokenizer();
  void finish_loading();
  void encode_text(const char* p, size_t n, std::vector<int64_t>& out) const;
  void split_added(size_t group, const char* p, size_t n, std::vector<int64_t>& out) const;
  void pre_tokenize(size_t step, const char* p, size_t n, std::vector<int64_t>& out) const;
  void encode_piece(const char* p, size_t n, std::vector<int64_t>& out) const;
  void merge_piece(const char* p, size_t n, std::vector<int32_t>& ids) const;

  std::string path_;
  uint64_t serial_ = 0;  // tells the per-thread caches of different tokenizers apart
  std::vector<std::string> token_bytes_;  // id -> bytes (raw); "" for unused ids
  std::vector<uint8_t> id_used_;
  std::unordered_map<std::string, int32_t> bytes_to_id_;  // raw bytes -> id (vocabulary entries)
  int32_t byte_id_[256];                                   // single-byte tokens; -1 if absent
  struct Merge {
    int32_t rank, id;
  };
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, merged id
  std::vector<std::unique_ptr<PreStep>> steps_;
  std::vector<std::unique_ptr<AddedGroup>> added_;  // non-normalized tokens first, then normalized ones
  std::unordered_map<int64_t, std::string> added_text_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  int64_t vocab_size_ = 0, eos_ = -1;
};

}  // namespace gqe
