#include "gqe/io/spm_model.h"

#include <cstring>

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
enum : uint32_t { kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3 };                      // ModelProto
enum : uint32_t { kPiece = 1, kScore = 2, kType = 3 };                                         // SentencePiece
enum : uint32_t { kModelType = 3, kTreatWhitespaceAsSuffix = 24, kByteFallback = 35,           // TrainerSpec
                  kUnkId = 40, kBosId = 41, kEosId = 42, kPadId = 43 };
enum : uint32_t { kName = 1, kCharsmap = 2, kDummyPrefix = 3, kExtraWhitespace = 4, kEscape = 5 };  // NormalizerSpec

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
      Reader n = r.sub();
      while (!n.done()) {
        const uint64_t k = n.varint();
        const uint32_t f = uint32_t(k >> 3);
        if (f == kName && (k & 7) == 2) m.normalizer_name = n.bytes();
        else if (f == kCharsmap && (k & 7) == 2) m.has_precompiled_charsmap = !n.bytes().empty();
        else if ((k & 7) == 0 && (f == kDummyPrefix || f == kExtraWhitespace || f == kEscape)) {
          const bool v = n.varint() != 0;
          (f == kDummyPrefix ? m.add_dummy_prefix : f == kExtraWhitespace ? m.remove_extra_whitespaces
                                                                          : m.escape_whitespaces) = v;
        } else n.skip(uint32_t(k & 7));
      }
    } else {
      r.skip(wire);
    }
  }
  if (m.pieces.empty()) throw FormatError(source + ": not a SentencePiece model (no pieces)");
  return m;
}

SpmModel read_spm_model(const std::string& path) { return parse_spm_model(fs::read_file(path), path); }

}  // namespace gqe
