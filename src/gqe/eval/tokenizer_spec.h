// Which tokenizer an evaluation uses: "bytes" (ByteTokenizer) or the path of a tokenizer model file.
// With no --tokenizer, a checkpoint directory that holds tokenizer.model uses it; otherwise bytes.
#pragma once
#include <memory>
#include <string>

#include "gqe/data/tokenizer.h"

namespace gqe::eval {

// spec: "bytes", a file path, or "" (auto: checkpoint_dir/tokenizer.model if present, else bytes).
// model_vocab: the checkpoint's vocab_size; a tokenizer with more ids than that is an error.
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& spec, const std::string& checkpoint_dir, int64_t model_vocab);

}  // namespace gqe::eval
