// The contents of a SentencePiece .model file (a serialized ModelProto), read directly from its protobuf
// wire format: the pieces with their scores and types, and the trainer and normalizer settings that decide
// how text is split. Needs no SentencePiece library (Debian's ships no sentencepiece_model.pb.h, and the
// library never loads into a libtorch process: spm_c_api.h). Used to write a Hugging Face tokenizer.json.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gqe {

enum class SpmPieceType { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };
enum class SpmModelType { unigram = 1, bpe = 2, word = 3, character = 4 };

struct SpmPiece {
  std::string piece;  // UTF-8, spaces as U+2581
  float score = 0;
  SpmPieceType type = SpmPieceType::normal;
};

struct SpmModel {
  std::vector<SpmPiece> pieces;  // id order
  SpmModelType model_type = SpmModelType::unigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;  // -1: none
  std::string normalizer_name;            // "identity", "nmt_nfkc", ... ("" when a custom rule is stored)
  bool has_precompiled_charsmap = false;  // a normalisation table is stored (not identity)
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Throws gqe::FormatError naming the file when it is not a readable ModelProto.
SpmModel read_spm_model(const std::string& path);
SpmModel parse_spm_model(const std::string& bytes, const std::string& source);

}  // namespace gqe
