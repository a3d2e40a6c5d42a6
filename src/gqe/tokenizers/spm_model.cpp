#include "gqe/tokenizers/spm_model.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"

namespace gqe {
namespace {

// Protobuf wire format: each field is a varint key (number << 3 | wire type) followed by a varint (type 0),
// 8 bytes (1), a length-prefixed payload (2) or 4 bytes (5).
struct Reader {
  const std::string& buf;
  size_t pos, end;
  const std::string& source;

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(source + ": not a SentencePiece model (" + what + " at byte " + std::to_string(pos) + ")");
  }
  bool done() const { return pos >= end; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= end) fail("truncated varint");
      const uint8_t b = uint8_t(buf[pos++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("overlong varint");
  }
  Reader sub() {  // a length-delimited payload
    const uint64_t n = varint();
    if (n > end - pos) fail("length past the end");
    Reader r{buf, pos, pos + size_t(n), source};
    pos += size_t(n);
    return r;
  }
  std::string bytes() {
    Reader r = sub();
    return buf.substr(r.pos, r.end - r.pos);
  }
  float fixed32_float() {
    if (end - pos < 4) fail("truncated float");
    float f;
    std::memcpy(&f, buf.data() + pos, 4);  // little-endian on every platform gqe builds for
    pos += 4;
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: if (end - pos < 8) fail("truncated field"); pos += 8; break;
      case 2: sub(); break;
      case 5: if (end - pos < 4) fail("truncated field"); pos += 4; break;
      default: fail("unknown wire type " + std::to_string(wire));
    }
  }
};

// Field numbers of sentencepiece_model.proto.
enum : uint32_t { kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3, kDenormalizerSpec = 5 };  // ModelProto
enum : uint32_t { kPiece = 1, kScore = 2, kType = 3 };                                         // SentencePiece
enum : uint32_t { kModelType = 3, kTreatWhitespaceAsSuffix = 24, kByteFallback = 35,           // TrainerSpec
                  kUnkId = 40, kBosId = 41, kEosId = 42, kPadId = 43 };
enum : uint32_t { kName = 1, kCharsmap = 2, kDummyPrefix = 3, kExtraWhitespace = 4, kEscape = 5 };  // NormalizerSpec

uint32_t load_le32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // little-endian, as SentencePiece writes it on every platform gqe builds for
  return v;
}

// A precompiled_charsmap, as SentencePiece's normalizer reads it: a uint32 trie size, a darts-clone
// double-array trie of that many bytes, then NUL-terminated replacement strings the trie's values point
// into. The library trusts every offset in it (a crafted one makes encode() crash), so each is checked
// here, following exactly the reads Darts::DoubleArray::commonPrefixSearch and Normalizer::NormalizePrefix
// make for any input text: every unit a byte can reach lies inside the trie, every value points at a
// NUL-terminated string inside the blob, and no path holds more than the 32 matches the normalizer keeps.
void check_precompiled_charsmap(const std::string& blob, const std::string& where) {
  auto fail = [&](const std::string& what) { throw FormatError(where + ": " + what); };
  if (blob.size() <= 4) fail("shorter than its 4-byte trie size");
  const uint64_t trie_bytes = load_le32(blob.data());
  if (trie_bytes > blob.size() - 4)
    fail("trie size " + std::to_string(trie_bytes) + " exceeds the " + std::to_string(blob.size() - 4) + " bytes after it");
  if (trie_bytes < 4 || trie_bytes % 4 != 0)
    fail("trie size " + std::to_string(trie_bytes) + " is not a positive multiple of 4 (32-bit units)");
  const char* trie = blob.data() + 4;
  const size_t units = size_t(trie_bytes / 4);
  const char* strings = trie + trie_bytes;
  const size_t strings_size = blob.size() - 4 - size_t(trie_bytes);
  auto unit = [&](size_t i) { return load_le32(trie + 4 * i); };
  // darts-clone's unit layout.
  auto offset = [](uint32_t u) -> size_t { return size_t(u >> 10) << ((u & (1U << 9)) >> 6); };
  auto has_leaf = [](uint32_t u) { return ((u >> 8) & 1) == 1; };
  auto label = [](uint32_t u) { return u & ((1U << 31) | 0xFF); };
  auto value = [](uint32_t u) { return size_t(u & ((1U << 31) - 1)); };
  constexpr int kMaxMatches = 32;  // Normalizer::NormalizePrefix's kMaxTrieResultsSize
  // Whatever byte comes next, the search reads unit base ^ byte: the whole 256-unit block must exist.
  auto check_block = [&](size_t base) {
    if ((base | 0xFF) >= units)
      fail("trie node at unit " + std::to_string(base) + " reaches past the trie's " + std::to_string(units) + " units");
  };
  // darts-clone shares equal subtrees, so the trie is a DAG: a depth-first walk with each node's most
  // matches below it memoised, and a node met again while still open is a cycle (a crafted one; the search
  // would follow it for the whole text).
  enum : uint8_t { kNew, kOpen, kDone };
  std::vector<uint8_t> state(units, kNew);
  std::vector<int> most(units, 0);  // matches on the worst path below a node
  struct Frame {
    size_t base;
    uint32_t c;  // the next input byte to look at
  };
  const size_t root = offset(unit(0));
  check_block(root);
  std::vector<Frame> stack = {{root, 0}};
  state[root] = kOpen;
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.c == 256) {
      state[f.base] = kDone;
      stack.pop_back();
      continue;
    }
    const size_t child = f.base ^ f.c;
    const uint32_t u = unit(child);
    if (label(u) != f.c) {
      ++f.c;
      continue;
    }
    const size_t next = child ^ offset(u);
    check_block(next);
    if (has_leaf(u)) {
      const size_t v = value(unit(next));
      if (v >= strings_size || std::memchr(strings + v, '\0', strings_size - v) == nullptr)
        fail("replacement offset " + std::to_string(v) + " is not a NUL-terminated string inside the " +
             std::to_string(strings_size) + " bytes of replacements");
    }
    if (state[next] == kOpen) fail("trie has a cycle through unit " + std::to_string(next));
    if (state[next] == kNew) {
      state[next] = kOpen;
      stack.push_back({next, 0});  // f is now stale; this byte is looked at again once `next` is done
      continue;
    }
    most[f.base] = std::max(most[f.base], (has_leaf(u) ? 1 : 0) + most[next]);
    ++f.c;
  }
  if (most[root] > kMaxMatches)
    fail(std::to_string(most[root]) + " rules match along one path of the trie, more than the " +
         std::to_string(kMaxMatches) + " SentencePiece handles");
}

// A NormalizerSpec (normalizer or denormalizer): what gqe reads of it, and its charsmap checked.
void read_normalizer(Reader n, SpmModel* m, const std::string& field) {
  while (!n.done()) {
    const uint64_t k = n.varint();
    const uint32_t f = uint32_t(k >> 3);
    if (f == kName && (k & 7) == 2) {
      std::string name = n.bytes();
      if (m) m->normalizer_name = std::move(name);
    } else if (f == kCharsmap && (k & 7) == 2) {
      const std::string blob = n.bytes();
      if (!blob.empty()) check_precompiled_charsmap(blob, n.source + ": field '" + field + ".precompiled_charsmap'");
      if (m) m->has_precompiled_charsmap = !blob.empty();
    } else if (m && (k & 7) == 0 && (f == kDummyPrefix || f == kExtraWhitespace || f == kEscape)) {
      const bool v = n.varint() != 0;
      (f == kDummyPrefix ? m->add_dummy_prefix : f == kExtraWhitespace ? m->remove_extra_whitespaces
                                                                       : m->escape_whitespaces) = v;
    } else n.skip(uint32_t(k & 7));
  }
}

}  // namespace

SpmModel parse_spm_model(const std::string& buf, const std::string& source) {
  SpmModel m;
  Reader r{buf, 0, buf.size(), source};
  while (!r.done()) {
    const uint64_t key = r.varint();
    const uint32_t field = uint32_t(key >> 3), wire = uint32_t(key & 7);
    if (field == kPieces && wire == 2) {
      Reader p = r.sub();
      SpmPiece piece;
      while (!p.done()) {
        const uint64_t k = p.varint();
        if ((k >> 3) == kPiece && (k & 7) == 2) piece.piece = p.bytes();
        else if ((k >> 3) == kScore && (k & 7) == 5) piece.score = p.fixed32_float();
        else if ((k >> 3) == kType && (k & 7) == 0) {
          const uint64_t t = p.varint();
          if (t < 1 || t > 6) p.fail("piece type " + std::to_string(t));
          piece.type = SpmPieceType(t);
        } else p.skip(uint32_t(k & 7));
      }
      m.pieces.push_back(std::move(piece));
    } else if (field == kTrainerSpec && wire == 2) {
      Reader t = r.sub();
      while (!t.done()) {
        const uint64_t k = t.varint();
        const uint32_t f = uint32_t(k >> 3);
        const bool known = f == kModelType || f == kTreatWhitespaceAsSuffix || f == kByteFallback ||
                           (f >= kUnkId && f <= kPadId);
        if ((k & 7) != 0 || !known) {
          t.skip(uint32_t(k & 7));
          continue;
        }
        const uint64_t v = t.varint();
        if (f >= kUnkId && f <= kPadId) {
          const int32_t id = int32_t(int64_t(v));  // int32 fields: -1 arrives sign-extended to 64 bits
          (f == kUnkId ? m.unk_id : f == kBosId ? m.bos_id : f == kEosId ? m.eos_id : m.pad_id) = id;
        } else if (f == kModelType) {
          if (v < 1 || v > 4) t.fail("model type " + std::to_string(v));
          m.model_type = SpmModelType(v);
        } else if (f == kTreatWhitespaceAsSuffix) m.treat_whitespace_as_suffix = v != 0;
        else m.byte_fallback = v != 0;
      }
    } else if (field == kNormalizerSpec && wire == 2) {
      read_normalizer(r.sub(), &m, "normalizer_spec");
    } else if (field == kDenormalizerSpec && wire == 2) {
      read_normalizer(r.sub(), nullptr, "denormalizer_spec");  // only checked: SentencePiece loads it too
    } else {
      r.skip(wire);
    }
  }
  if (m.pieces.empty()) throw FormatError(source + ": not a SentencePiece model (no pieces)");
  return m;
}

SpmModel read_spm_model(const std::string& path) { return parse_spm_model(fs::read_file(path, fs::kTokenizerFileLimit), path); }

}  // namespace gqe
