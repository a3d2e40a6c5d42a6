// Tokenizer interface shared by training, generation and evaluation. ByteTokenizer (token = byte,
// vocab 256) needs no files; trained tokenizers (SentencePiece) implement the same interface.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gqe {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int64_t>& tokens) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t eos_id() const { return -1; }  // -1: none
  virtual std::string name() const = 0;           // "bytes" or the model file path
};

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> out(text.size());
    for (size_t i = 0; i < text.size(); ++i) out[i] = static_cast<unsigned char>(text[i]);
    return out;
  }
  std::string decode(const std::vector<int64_t>& tokens) const override {
    std::string out;
    for (int64_t t : tokens) out.push_back(t >= 0 && t < 256 ? static_cast<char>(t) : '?');
    return out;
  }
  int64_t vocab_size() const override { return 256; }
  std::string name() const override { return "bytes"; }
};

}  // namespace gqe
