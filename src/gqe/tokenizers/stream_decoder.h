// Text of tokens produced one at a time (sampling), printed as soon as it is whole. A byte-level BPE token
// can end inside a UTF-8 character, and a SentencePiece byte-fallback piece decodes to U+FFFD until the
// rest of its character follows; decoding each token alone would print broken characters. The pending
// tokens are decoded together and released once their text ends on a complete character.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gqe/tokenizers/tokenizer.h"

namespace gqe {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  // The text completed by `token` (often empty while a character is still incomplete).
  std::string push(int64_t token);
  // Whatever is still pending, complete or not.
  std::string finish();

 private:
  const Tokenizer& tok_;
  std::vector<int64_t> pending_;
};

// True when `s` ends inside a UTF-8 character (a lead byte whose continuation bytes have not all come).
bool ends_in_partial_utf8(const std::string& s);

}  // namespace gqe
