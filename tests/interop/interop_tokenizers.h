// The tokenizers the interop tests export with: a small GPT-2-style byte-level BPE tokenizer.json and a small
// SentencePiece model, each recorded in a checkpoint as `gqe train --tokenizer` records it.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <nlohmann/json.hpp>

#include "gqe/core/fs.h"
#include "gqe/interop/hf_export.h"
#include "gqe/tokenizers/bpe_tokenizer.h"
#include "gqe/tokenizers/run_tokenizer.h"
#include "spm_test_util.h"

namespace gqe::interop {

// A GPT-2-style tokenizer.json: the 256 bytes, merges for a few words (ids 256..kBpeEndOfText - 1) and, when
// asked, "<|endoftext|>" right after them, as GPT-2's (the tokenizers library gives an added token the next
// free id whatever id the file names).
constexpr int64_t kBpeEndOfText = 274;
inline std::string write_bpe_tokenizer(const std::string& path, bool with_end_of_text) {
  const int64_t eot_id = with_end_of_text ? kBpeEndOfText : -1;
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, char(b)))] = b;
  nlohmann::ordered_json merges = nlohmann::ordered_json::array();
  auto add = [&](const std::string& a, const std::string& b) {
    const std::string A = bytes_to_byte_level(a), B = bytes_to_byte_level(b);
    if (!vocab.contains(A + B)) vocab[A + B] = int64_t(vocab.size());
    merges.push_back({A, B});
  };
  for (const std::string w : {"the", "light", "said", "and", "God"}) {
    std::string cur = " ";
    for (char c : w) {
      add(cur, std::string(1, c));
      cur += c;
    }
  }
  if (int64_t(vocab.size()) != kBpeEndOfText) throw std::logic_error("write_bpe_tokenizer: kBpeEndOfText is out of date");
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  if (eot_id >= 0)
    added.push_back({{"id", eot_id}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  // Every field the Hugging Face tokenizers library requires, as it saves a GPT-2 tokenizer.
  const nlohmann::ordered_json j = byte_level_bpe_tokenizer_json(vocab, merges, added, true);
  fs::write_file_atomic(path, j.dump() + "\n");
  return path;
}

// A SentencePiece BPE model with `vocab_size` pieces (byte fallback: 3 specials + 256 bytes + merges),
// trained with gqe's settings on pseudo-words.
inline std::string train_small_sentencepiece(const std::string& dir, int64_t vocab_size) {
  const char* syllables[] = {"ka", "ri", "on", "the", "st", "el", "mu", "ng", "qu", "ar", "in", "go"};
  std::string corpus;
  uint64_t x = 5;
  auto next = [&x] { return (x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int line = 0; line < 600; ++line) {
    for (int w = 0; w < 8; ++w) {
      for (int k = 0, n = 1 + int(next() % 3); k < n; ++k) corpus += syllables[next() % 12];
      corpus += w < 7 ? " " : ".\n";
    }
  }
  return test::train_test_sentencepiece(dir, corpus, vocab_size);
}

}  // namespace gqe::interop
