// Hand-built SentencePiece models (serialized ModelProto, sentencepiece_model.proto) for the tests of what
// gqe checks before libsentencepiece sees a model: a tiny BPE model whose normalizer carries the given
// precompiled_charsmap. Needs no SentencePiece library.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace gqe::test {

inline std::string proto_varint(uint64_t v) {
  std::string s;
  do {
    s.push_back(char((v & 0x7F) | (v >= 0x80 ? 0x80 : 0)));
    v >>= 7;
  } while (v);
  return s;
}
inline std::string proto_bytes(uint32_t field, const std::string& b) {
  return proto_varint(uint64_t(field) << 3 | 2) + proto_varint(b.size()) + b;
}
inline std::string proto_uint(uint32_t field, uint64_t v) { return proto_varint(uint64_t(field) << 3) + proto_varint(v); }
inline std::string proto_float(uint32_t field, float f) {
  std::string s = proto_varint(uint64_t(field) << 3 | 5);
  char b[4];
  std::memcpy(b, &f, 4);
  return s + std::string(b, 4);
}
inline std::string le32(uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  return std::string(b, 4);
}

// A charsmap blob: the trie's 32-bit units, then the replacement strings.
inline std::string charsmap_blob(const std::vector<uint32_t>& units, const std::string& strings) {
  std::string s = le32(uint32_t(units.size() * 4));
  for (uint32_t u : units) s += le32(u);
  return s + strings;
}

// <unk> <s> </s>, then ▁ a b c as normal pieces of a BPE model; the normalizer's charsmap is `charsmap`.
inline std::string crafted_spm_model(const std::string& charsmap) {
  std::string m;
  auto piece = [&](const std::string& p, float score, int type) {
    m += proto_bytes(1, proto_bytes(1, p) + proto_float(2, score) + proto_uint(3, uint64_t(type)));
  };
  piece("<unk>", 0, 2);
  piece("<s>", 0, 3);
  piece("</s>", 0, 3);
  piece("\xE2\x96\x81", -1, 1);
  piece("a", -2, 1);
  piece("b", -3, 1);
  piece("c", -4, 1);
  m += proto_bytes(2, proto_uint(3, 2));  // trainer_spec.model_type = BPE
  m += proto_bytes(3, proto_bytes(1, "crafted") + proto_bytes(2, charsmap));
  return m;
}

// Two 256-unit blocks: the root at unit 0 (its children in block 1), 'a' at unit 256 ^ 'a' with a match
// whose value unit is block 0's unit 'a'; every other unit carries the leaf flag, so no byte matches it.
// `a_next_offset` is the offset of 'a' (0x100: into block 0; 0x61: back to the root block, a cycle).
inline std::vector<uint32_t> one_rule_trie(uint32_t value, uint32_t a_next_offset = 0x100) {
  std::vector<uint32_t> u(512, 0x80000000u);
  u[0] = 256u << 10;                                           // root: offset 256
  u[256 ^ 'a'] = (a_next_offset << 10) | (1u << 8) | 'a';      // label 'a', has a match
  u[(256 ^ 'a') ^ a_next_offset] = 0x80000000u | value;        // the match's value: an offset into the strings
  return u;
}
// 'a' normalizes to "b": a well-formed charsmap.
inline std::string valid_charsmap() { return charsmap_blob(one_rule_trie(0), std::string("b\0", 2)); }

// A root whose offset points about 4 GiB past a one-unit trie: libsentencepiece 0.1.97 reads there on the
// first character it normalizes (SIGSEGV).
inline std::string crashing_charsmap() { return charsmap_blob({0xFFFFFE00u}, std::string("x\0", 2)); }

}  // namespace gqe::test
