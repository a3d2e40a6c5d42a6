// A small SentencePiece model for tests: `text` is written to DIR/corpus.txt and trained with gqe's settings
// (tokenizers/sentencepiece.h, one thread) into DIR/tok.model, whose path is returned. Only tests of the system
// layer (which links the SentencePiece shim loader) may include it.
#pragma once
#include <cstdint>
#include <string>

#include "gqe/core/fs.h"
#include "gqe/tokenizers/sentencepiece.h"

namespace gqe::test {

inline std::string train_test_sentencepiece(const std::string& dir, const std::string& text, int64_t vocab_size) {
  fs::write_file_atomic(dir + "/corpus.txt", text);
  SpmTrainOptions o;
  o.inputs = {dir + "/corpus.txt"};
  o.model_prefix = dir + "/tok";
  o.vocab_size = vocab_size;
  o.num_threads = 1;
  train_sentencepiece(o);
  return dir + "/tok.model";
}

}  // namespace gqe::test
