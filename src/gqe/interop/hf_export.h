// Hugging Face transformers interop: `gqe export --format hf` writes a checkpoint as a folder that
// `AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)` and `AutoTokenizer.from_pretrained(DIR)`
// load; `gqe import` reads such a folder back into a gqe checkpoint, bit for bit (docs/interop.md).
//
// The folder: config.json (model_type "gqe", auto_map to the two Python files, gqe's model config flattened
// as below), model.safetensors (the same float32 tensors under Hugging Face names, with the checkpoint's
// safetensors metadata kept), configuration_gqe.py + modeling_gqe.py (python/gqe_hf/, embedded in the
// binary at build time) and the tokenizer files.
//
// Parameter names, gqe (model/transformer.h) -> Hugging Face:
//   embed_tokens.weight           -> model.embed_tokens.weight
//   layers.{i}.attn_norm.*        -> model.layers.{i}.input_layernorm.*
//   layers.{i}.attn.*             -> model.layers.{i}.self_attn.*   (q_proj, k_proj, v_proj, o_proj, router,
//                                                                    shared_q_proj; same layouts)
//   layers.{i}.mlp_norm.*         -> model.layers.{i}.post_attention_layernorm.*
//   layers.{i}.mlp.*              -> model.layers.{i}.mlp.*         (gate_proj, up_proj, down_proj)
//   norm.*                        -> model.norm.*
//   lm_head.weight                -> lm_head.weight                 (absent when tied, as in gqe)
// Config fields: the model's keep their names; attention.X becomes attention_kind (kind), top_k_per_group
// (top_k; "top_k" would collide with the generation setting), gqe_variant (variant), attention_kernels
// (implementation), and num_attention_heads, num_key_value_heads, head_dim, aux_loss_weight,
// router_denominator_eps as they are.
#pragma once
#include <nlohmann/json.hpp>
#include <map>
#include <string>

#include "gqe/core/config.h"
#include "gqe/tokenizers/spm_model.h"

namespace gqe {

// Throws FormatError naming the tensor when the name is not one of the patterns above.
std::string hf_parameter_name(const std::string& gqe_name);
std::string gqe_parameter_name(const std::string& hf_name);

// The Hugging Face config.json of a model (without the tokenizer's fields), and back. model_config_from_hf
// reads only the fields it knows (transformers adds its own) and validates as gqe's config parser does.
nlohmann::ordered_json hf_config_json(const ModelConfig& cfg);
ModelConfig model_config_from_hf(const nlohmann::json& hf, const std::string& source);

// Where the exported tokenizer comes from.
enum class HfTokenizerKind {
  bytes,           // gqe's ByteTokenizer: a byte-level tokenizer.json, token id = byte value
  sentencepiece,   // a SentencePiece .model, copied as tokenizer.model
  tokenizer_json,  // a Hugging Face tokenizer.json (byte-level BPE), copied as it is
};
struct HfTokenizerSource {
  HfTokenizerKind kind = HfTokenizerKind::bytes;
  std::string path;     // the file to copy (sentencepiece, tokenizer_json)
  int64_t eos_id = -1;  // tokenizer_json: the end-of-text id gqe's tokenizer finds in it (-1: none)
};

// A byte-level BPE tokenizer.json as the Hugging Face tokenizers library saves one: the ByteLevel
// pre-tokenizer and decoder (`gpt2_style`: with GPT-2's split regex and offset trimming; else neither, as
// gqe's byte tokenizer), `vocab` (byte-level strings -> ids), `merges` (pairs) and `added_tokens`.
nlohmann::ordered_json byte_level_bpe_tokenizer_json(const nlohmann::ordered_json& vocab,
                                                     const nlohmann::ordered_json& merges,
                                                     const nlohmann::ordered_json& added_tokens, bool gpt2_style);

// The tokenizer.json of gqe's byte tokenizer: ids 0..255 are the bytes (in GPT-2's byte-to-character
// alphabet, no merges) and nothing else, so that every id is a row of the model's 256-entry embedding.
// Its tokenizer_config.json names byte 0 (NUL, never in text) as the eos and pad token: the harness needs
// one for an empty context and for padding, and the byte tokenizer has none of its own.
std::string byte_level_tokenizer_json();
// Whether a tokenizer.json is that of the byte tokenizer: this version's, or earlier exports' (which had
// "<|endoftext|>" at id 256, outside the embedding).
bool is_byte_level_tokenizer_json(const std::string& text);

// A tokenizer.json that encodes exactly as a SentencePiece BPE model (its pieces, scores and byte fallback;
// merges derived from the vocabulary as transformers' own converter does). Empty when the model uses
// what a tokenizer.json cannot reproduce exactly (a unigram model, a normalisation table, collapsed
// whitespace, whitespace as suffix); `why_not` then says which.
std::string sentencepiece_tokenizer_json(const SpmModel& model, std::string* why_not);

// The tokenizer to export with the checkpoint in DIR: the one its run recorded (tokenizers/run_tokenizer.h),
// or SPEC when not empty (--tokenizer). GPT-2's vocab.json + merges.txt is an error: transformers loads a
// tokenizer.json.
HfTokenizerSource hf_tokenizer_of_checkpoint(const std::string& dir, const std::string& spec);

// Writes OUT_DIR (which must not exist, or be empty) from the checkpoint folder; all files appear at once
// (written into a temporary sibling folder, then renamed).
void export_hf(const std::string& checkpoint_dir, const std::string& out_dir, const HfTokenizerSource& tokenizer);

// What import_hf did beyond copying: tensors converted to float32, by their dtype in the folder
// ("float16", "bfloat16", "float64").
struct HfImportReport {
  std::map<std::string, int64_t> converted;
};

// Reads an exported folder (config.json + model.safetensors, tokenizer files) into a gqe checkpoint folder
// OUT_DIR (must not exist, or be empty). Floating-point weights in another dtype (a folder transformers
// saved in float16 or bfloat16) become float32, gqe's. The tokenizer is recorded as `gqe train` records a
// run's (record_run_tokenizer, tokenizers/run_tokenizer.h): the byte tokenizer as "bytes", a tokenizer.model
// or another tokenizer.json as that file; a folder without tokenizer files records none (the run then needs --tokenizer unless its vocab_size is the bytes' 256).
HfImportReport import_hf(const std::string& hf_dir, const std::string& out_dir);

}  // namespace gqe
