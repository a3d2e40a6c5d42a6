#include "gqe/eval/tokenizer_spec.h"

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
// The SentencePiece tokenizer lives in data/sentencepiece.h; eval builds with or without it.
#if __has_include("gqe/data/sentencepiece.h")
#include "gqe/data/sentencepiece.h"
#define GQE_EVAL_HAS_SPM 1
#endif

namespace gqe::eval {

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& spec, const std::string& checkpoint_dir, int64_t model_vocab) {
  std::string s = spec;
  if (s.empty()) {
    const std::string auto_path = checkpoint_dir + "/tokenizer.model";
    s = fs::exists(auto_path) ? auto_path : "bytes";
  }
  std::unique_ptr<Tokenizer> tok;
  if (s == "bytes") {
    tok = std::make_unique<ByteTokenizer>();
  } else {
#ifdef GQE_EVAL_HAS_SPM
    tok = load_tokenizer(s);
#else
    throw Error("tokenizer '" + s + "': only the byte tokenizer (\"bytes\") is available in this build");
#endif
  }
  if (tok->vocab_size() > model_vocab)
    throw Error("tokenizer '" + tok->name() + "' has " + std::to_string(tok->vocab_size()) +
                " ids but the checkpoint's vocab_size is " + std::to_string(model_vocab));
  return tok;
}

}  // namespace gqe::eval
