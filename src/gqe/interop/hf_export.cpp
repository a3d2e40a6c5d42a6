#include "gqe/interop/hf_export.h"

#include <filesystem>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <unordered_map>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"
#include "gqe/core/run_dir.h"
#include "gqe/interop/hf_python_sources.h"  // generated at build time from python/gqe_hf/
#include "gqe/io/checkpoint.h"
#include "gqe/io/safetensors.h"
#include "gqe/tokenizers/run_tokenizer.h"

namespace gqe {
namespace {

using ojson = nlohmann::ordered_json;

// The per-layer module names, gqe -> Hugging Face (Llama's names where the part exists there).
const std::pair<const char*, const char*> kLayerParts[] = {
    {"attn_norm", "input_layernorm"}, {"attn", "self_attn"}, {"mlp_norm", "post_attention_layernorm"}, {"mlp", "mlp"}};

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// "layers.{i}.{part}.{rest}" with the part renamed by `rename` (nullptr when unknown); "" when no match.
std::string map_layer_name(const std::string& name, const std::string& from_prefix, const std::string& to_prefix,
                           const std::function<const char*(const std::string&)>& rename) {
  if (!starts_with(name, from_prefix)) return "";
  const std::string rest = name.substr(from_prefix.size());
  const size_t dot1 = rest.find('.');
  if (dot1 == std::string::npos || dot1 == 0 || rest.find_first_not_of("0123456789") != dot1) return "";
  const size_t dot2 = rest.find('.', dot1 + 1);
  if (dot2 == std::string::npos || dot2 + 1 == rest.size()) return "";
  const char* part = rename(rest.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!part) return "";
  return to_prefix + rest.substr(0, dot1 + 1) + part + rest.substr(dot2);
}

std::string map_name(const std::string& name, bool to_hf) {
  const std::string gqe_layers = "layers.", hf_layers = "model.layers.";
  const std::string mapped = map_layer_name(
      name, to_hf ? gqe_layers : hf_layers, to_hf ? hf_layers : gqe_layers, [&](const std::string& part) -> const char* {
        for (const auto& [g, h] : kLayerParts)
          if (part == (to_hf ? g : h)) return to_hf ? h : g;
        return nullptr;
      });
  if (!mapped.empty()) return mapped;
  for (const char* top : {"embed_tokens.", "norm."}) {
    const std::string g = top, h = "model." + g;
    if (to_hf && starts_with(name, g) && name.size() > g.size()) return h + name.substr(g.size());
    if (!to_hf && starts_with(name, h) && name.size() > h.size()) return g + name.substr(h.size());
  }
  if (name == "lm_head.weight") return name;
  return "";
}

// The fields of gqe's attention object and their flat Hugging Face names.
const std::pair<const char*, const char*> kAttentionFields[] = {
    {"kind", "attention_kind"},
    {"num_attention_heads", "num_attention_heads"},
    {"num_key_value_heads", "num_key_value_heads"},
    {"head_dim", "head_dim"},
    {"top_k", "top_k_per_group"},
    {"variant", "gqe_variant"},
    {"aux_loss_weight", "aux_loss_weight"},
    {"router_denominator_eps", "router_denominator_eps"},
    {"implementation", "attention_kernels"}};
const char* const kModelFields[] = {"vocab_size",        "hidden_size",         "num_hidden_layers",
                                    "intermediate_size", "max_position_embeddings", "rms_norm_eps",
                                    "rope_theta",        "tie_word_embeddings", "norm_type",
                                    "mlp_type",          "position_embedding",  "initializer_range"};

// GPT-2's byte -> printable character table (the byte-level alphabet of Hugging Face's ByteLevel
// pre-tokenizer): printable Latin-1 bytes map to themselves, the others to U+0100 onwards.
std::string byte_character(int b) {
  auto printable = [](int c) { return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF); };
  int cp = b;
  if (!printable(b)) {
    cp = 256;
    for (int c = 0; c < b; ++c)
      if (!printable(c)) ++cp;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(char(cp));
  } else {
    s.push_back(char(0xC0 | (cp >> 6)));
    s.push_back(char(0x80 | (cp & 0x3F)));
  }
  return s;
}

void copy_file(const std::string& from, const std::string& to) { fs::write_file_atomic(to, fs::read_file(from)); }

// The text of token `id` in a Hugging Face tokenizer.json (an added token's content, else the vocabulary
// key, in the byte-level alphabet), as tokenizer_config.json names special tokens; "" when absent.
std::string token_text(const nlohmann::json& tj, int64_t id) {
  if (const auto a = tj.find("added_tokens"); a != tj.end() && a->is_array())
    for (const auto& t : *a)
      if (t.is_object() && t.value("id", int64_t(-1)) == id && t.contains("content") && t["content"].is_string())
        return t["content"].get<std::string>();
  if (const auto m = tj.find("model"); m != tj.end() && m->is_object())
    if (const auto v = m->find("vocab"); v != m->end() && v->is_object())
      for (const auto& [text, vid] : v->items())
        if (vid.is_number_integer() && vid.get<int64_t>() == id) return text;
  return "";
}

// The eos token named in tokenizer_config.json: lm-evaluation-harness conditions an empty context on it
// (loglikelihood_rolling's first window, an empty prompt) and pads with it, and stops at once without one.
struct EosChoice {
  int64_t id = -1;
  std::string text;
  bool split_special_tokens = false;  // needed when the choice is an ordinary token (below)
};

// The tokenizer's own end-of-text token (gqe's choice, `eos_id`); without one, its first special added
// token; without any, id 0, an ordinary token. An ordinary token made special would be cut out of text
// before the BPE runs (changing the encoding), so split_special_tokens then keeps text encoding as gqe's;
// it changes nothing else, the tokenizer having no other special token.
EosChoice tokenizer_json_eos(const std::string& path, int64_t eos_id) {
  const nlohmann::json tj = parse_json(fs::read_file(path), path);
  if (!tj.is_object()) throw FormatError(path + ": expected a JSON object at the top level");
  EosChoice c;
  if (eos_id >= 0) {
    c.id = eos_id;
  } else if (const auto a = tj.find("added_tokens"); a != tj.end() && a->is_array()) {
    for (const auto& t : *a)
      if (t.is_object() && t.value("special", false) && t.contains("id") && t["id"].is_number_integer()) {
        c.id = t["id"].get<int64_t>();
        break;
      }
  }
  if (c.id < 0) {
    c.id = 0;
    c.split_special_tokens = true;
  }
  c.text = token_text(tj, c.id);
  if (c.text.empty()) throw FormatError(path + ": no token with id " + std::to_string(c.id) + " (for the eos token)");
  if (eos_id < 0)
    std::cerr << "gqe export: warning: " << path << " has no end-of-text token (<|endoftext|>, <|end_of_text|>, </s>, "
              << "<eos>); tokenizer_config.json names '" << c.text << "' (id " << c.id << ") as the eos and pad token, "
              << "which lm-evaluation-harness puts before an empty context and pads with\n";
  return c;
}

// A special token the export names must be a row of the model's embedding: transformers looks every id
// up, padding included, and fails on one past the end.
void check_special_id(const std::string& what, int64_t id, const std::string& source, const ModelConfig& cfg) {
  if (id >= cfg.vocab_size)
    throw Error(source + ": its " + what + " has id " + std::to_string(id) + ", outside the model's vocab_size " +
                std::to_string(cfg.vocab_size) + " (was the model trained with this tokenizer?)");
}

// The tokenizer files of the export.
void write_tokenizer_files(const std::string& dir, const HfTokenizerSource& tok, const ModelConfig& cfg) {
  ojson tc;
  switch (tok.kind) {
    case HfTokenizerKind::bytes:
      fs::write_file_atomic(dir + "/tokenizer.json", byte_level_tokenizer_json());
      // Byte 0 (NUL) as eos and pad (byte_level_tokenizer_json), under its byte-level character U+0100.
      // Named special, that character in text would match it as a whole (id 0 instead of its two UTF-8
      // bytes): split_special_tokens keeps text encoding as gqe's bytes.
      tc = {{"tokenizer_class", "PreTrainedTokenizerFast"},
            {"eos_token", byte_character(0)},
            {"pad_token", byte_character(0)},
            {"split_special_tokens", true},
            {"clean_up_tokenization_spaces", false}};
      break;
    case HfTokenizerKind::sentencepiece: {
      // tokenizer.model for the sentencepiece library, and a tokenizer.json with the same encoding for
      // AutoTokenizer (transformers does not convert gqe's byte-fallback BPE models itself). gqe adds no BOS.
      copy_file(tok.path, dir + "/tokenizer.model");
      const SpmModel spm = read_spm_model(tok.path);
      std::string why;
      const std::string json = sentencepiece_tokenizer_json(spm, &why);
      auto piece = [&](int32_t id) {
        return id >= 0 && size_t(id) < spm.pieces.size() ? ojson(spm.pieces[size_t(id)].piece) : ojson(nullptr);
      };
      if (json.empty()) {
        std::cerr << "gqe export: warning: " << tok.path << ": no tokenizer.json written because " << why
                  << "; tokenize with sentencepiece and tokenizer.model\n";
        tc = {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", false}, {"add_eos_token", false},
              {"legacy", false}};
      } else {
        fs::write_file_atomic(dir + "/tokenizer.json", json);
        // "<s>" in text stays text, as SentencePiece encodes it.
        tc = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"split_special_tokens", true}};
      }
      int32_t eos = spm.eos_id;
      if (eos < 0 && !spm.pieces.empty()) {
        // The harness stops generate_until at the eos token (and without BOS conditions on it): without one,
        // piece 0 (SentencePiece's <unk>) stands in.
        eos = 0;
        std::cerr << "gqe export: warning: " << tok.path << " has no eos piece; tokenizer_config.json names '"
                  << spm.pieces[0].piece << "' (id 0) as the eos and pad token, which lm-evaluation-harness "
                  << "generates until and pads with\n";
      }
      const std::pair<const char*, int32_t> specials[] = {
          {"unk", spm.unk_id}, {"bos", spm.bos_id}, {"eos", eos}, {"pad", spm.pad_id}};
      for (const auto& [what, id] : specials)
        if (id >= 0) check_special_id(std::string(what) + " piece", id, tok.path, cfg);
      tc["unk_token"] = piece(spm.unk_id);
      tc["bos_token"] = piece(spm.bos_id);
      tc["eos_token"] = piece(eos);
      // gqe trains without a pad piece: the eos piece pads then (padded positions are masked).
      if (spm.pad_id >= 0 || eos >= 0) tc["pad_token"] = piece(spm.pad_id >= 0 ? spm.pad_id : eos);
      tc["clean_up_tokenization_spaces"] = false;
      break;
    }
    case HfTokenizerKind::tokenizer_json: {
      // A Hugging Face tokenizer.json (gqe's byte-level BPE): the same file serves both sides; the eos token
      // pads too (such tokenizers have no pad token; padded positions are masked).
      const EosChoice eos = tokenizer_json_eos(tok.path, tok.eos_id);
      check_special_id("eos token '" + eos.text + "'", eos.id, tok.path, cfg);
      copy_file(tok.path, dir + "/tokenizer.json");
      tc = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"eos_token", eos.text}, {"pad_token", eos.text}};
      if (eos.split_special_tokens) tc["split_special_tokens"] = true;
      tc["clean_up_tokenization_spaces"] = false;
      break;
    }
  }
  tc["model_max_length"] = cfg.max_position_embeddings;
  fs::write_file_atomic(dir + "/tokenizer_config.json", tc.dump(2) + "\n");
}

}  // namespace

std::string hf_parameter_name(const std::string& gqe_name) {
  std::string h = map_name(gqe_name, true);
  if (h.empty()) throw FormatError("parameter '" + gqe_name + "': no Hugging Face name for it (not a gqe parameter)");
  return h;
}

std::string gqe_parameter_name(const std::string& hf_name) {
  std::string g = map_name(hf_name, false);
  if (g.empty()) throw FormatError("tensor '" + hf_name + "': not a parameter of a gqe model");
  return g;
}

ojson hf_config_json(const ModelConfig& cfg) {
  const ojson g = ojson::parse(model_config_to_json(cfg));
  ojson j = {{"architectures", {"GqeForCausalLM"}},
             {"auto_map",
              {{"AutoConfig", "configuration_gqe.GqeConfig"}, {"AutoModelForCausalLM", "modeling_gqe.GqeForCausalLM"}}},
             {"model_type", "gqe"},
             {"dtype", "float32"}};
  for (const char* f : kModelFields) j[f] = g.at(f);
  const ojson& a = g.at("attention");
  for (const auto& [gf, hf] : kAttentionFields)
    if (a.contains(gf)) j[hf] = a.at(gf);
  return j;
}

ModelConfig model_config_from_hf(const nlohmann::json& hf, const std::string& source) {
  if (!hf.is_object()) throw ConfigError(source + ": expected a JSON object at the top level");
  const auto mt = hf.find("model_type");
  if (mt == hf.end() || !mt->is_string() || mt->get<std::string>() != "gqe")
    throw ConfigError(source + ": field 'model_type': expected \"gqe\" (a folder written by gqe export --format hf), got " +
                      truncate_for_message(mt == hf.end() ? "nothing" : mt->dump()));
  nlohmann::json g = {{"model_type", "gqe_lm"}}, a = nlohmann::json::object();
  for (const char* f : kModelFields)
    if (hf.contains(f)) g[f] = hf[f];
  const auto kind = hf.find("attention_kind");
  const bool gqa = kind != hf.end() && *kind == "gqa";
  for (const auto& [gf, hff] : kAttentionFields) {
    const std::string name = gf;
    const bool gqe_only = name == "top_k" || name == "variant" || name == "aux_loss_weight" || name == "router_denominator_eps";
    if (hf.contains(hff) && !(gqa && gqe_only)) a[gf] = hf[hff];
  }
  g["attention"] = a;
  return parse_model_config(g.dump(), source + " (read as a gqe config)");
}

ojson byte_level_bpe_tokenizer_json(const ojson& vocab, const ojson& merges, const ojson& added_tokens, bool gpt2_style) {
  const ojson byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", gpt2_style}, {"use_regex", gpt2_style}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added_tokens},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level},
          {"post_processor", nullptr},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merges}}}};
}

namespace {

// The byte tokenizer's tokenizer.json with the given added tokens.
std::string byte_level_tokenizer_json_with(const ojson& added_tokens) {
  ojson vocab = ojson::object();
  for (int b = 0; b < 256; ++b) vocab[byte_character(b)] = b;
  return byte_level_bpe_tokenizer_json(vocab, ojson::array(), added_tokens, false).dump(2) + "\n";
}

}  // namespace

std::string byte_level_tokenizer_json() { return byte_level_tokenizer_json_with(ojson::array()); }

bool is_byte_level_tokenizer_json(const std::string& text) {
  static const std::string earlier = byte_level_tokenizer_json_with(
      {{{"id", 256}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
        {"normalized", false}, {"special", true}}});
  return text == byte_level_tokenizer_json() || text == earlier;
}

namespace {

// Number of code points of a UTF-8 string (pieces are valid UTF-8).
size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

std::string sentencepiece_tokenizer_json(const SpmModel& m, std::string* why_not) {
  auto refuse = [&](const std::string& why) {
    if (why_not) *why_not = why;
    return std::string();
  };
  if (m.model_type != SpmModelType::bpe) return refuse("it is not a BPE model");
  if (m.has_precompiled_charsmap || (m.normalizer_name != "identity" && !m.normalizer_name.empty()))
    return refuse("it normalises text ('" + m.normalizer_name + "')");
  if (m.remove_extra_whitespaces) return refuse("it collapses runs of whitespace (remove_extra_whitespaces)");
  if (!m.escape_whitespaces || m.treat_whitespace_as_suffix) return refuse("its whitespace handling is not the default");
  const std::string space = "\xE2\x96\x81";  // U+2581, SentencePiece's space symbol
  ojson vocab = ojson::object(), added = ojson::array();
  std::unordered_map<std::string, int64_t> normal;  // pieces that can take part in merges -> id
  for (size_t id = 0; id < m.pieces.size(); ++id) {
    const SpmPiece& p = m.pieces[id];
    vocab[p.piece] = id;
    if (p.type == SpmPieceType::normal) normal.emplace(p.piece, int64_t(id));
    const bool special = p.type == SpmPieceType::control || p.type == SpmPieceType::unknown;
    if (special || p.type == SpmPieceType::user_defined)
      added.push_back({{"id", id}, {"content", p.piece}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", special}});
  }
  // Merges: every split of a normal piece into two normal pieces, ranked by the merged piece's score (BPE
  // merges the best-scoring adjacent pair first), then the longer left part, as transformers' converter.
  struct Merge {
    float score;
    size_t left_len, right_len;
    int64_t left, right;
  };
  std::vector<Merge> merges;
  for (const SpmPiece& p : m.pieces) {
    if (p.type != SpmPieceType::normal) continue;
    for (size_t i = 1; i < p.piece.size(); ++i) {
      if ((static_cast<unsigned char>(p.piece[i]) & 0xC0) == 0x80) continue;  // inside a code point
      const auto l = normal.find(p.piece.substr(0, i)), r = normal.find(p.piece.substr(i));
      if (l != normal.end() && r != normal.end())
        merges.push_back({p.score, utf8_length(l->first), utf8_length(r->first), l->second, r->second});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_len != b.left_len) return a.left_len > b.left_len;
    if (a.right_len != b.right_len) return a.right_len > b.right_len;
    return a.left != b.left ? a.left < b.left : a.right < b.right;
  });
  ojson merge_list = ojson::array();
  for (const Merge& x : merges) merge_list.push_back({m.pieces[size_t(x.left)].piece, m.pieces[size_t(x.right)].piece});
  const ojson replace_space = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}};
  const ojson normalizer = m.add_dummy_prefix
                               ? ojson{{"type", "Sequence"},
                                       {"normalizers", {{{"type", "Prepend"}, {"prepend", space}}, replace_space}}}
                               : replace_space;
  ojson decoders = {{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}}};
  if (m.add_dummy_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  const bool has_unk = m.unk_id >= 0 && size_t(m.unk_id) < m.pieces.size();
  const ojson j = {{"version", "1.0"},
                   {"truncation", nullptr},
                   {"padding", nullptr},
                   {"added_tokens", added},
                   {"normalizer", normalizer},
                   {"pre_tokenizer", nullptr},
                   {"post_processor", nullptr},
                   {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
                   {"model",
                    {{"type", "BPE"},
                     {"dropout", nullptr},
                     {"unk_token", has_unk ? ojson(m.pieces[size_t(m.unk_id)].piece) : ojson(nullptr)},
                     {"continuing_subword_prefix", nullptr},
                     {"end_of_word_suffix", nullptr},
                     {"fuse_unk", true},
                     {"byte_fallback", m.byte_fallback},
                     {"ignore_merges", false},
                     {"vocab", vocab},
                     {"merges", merge_list}}}};
  return j.dump(2) + "\n";
}

void export_hf(const std::string& checkpoint_dir, const std::string& out_dir, const HfTokenizerSource& tokenizer) {
  // Loading the checkpoint checks it whole (config, every tensor present with its shape, nothing extra).
  const std::string weights = checkpoint_dir + "/model.safetensors";
  const ModelConfig cfg = load_model_config(checkpoint_dir + "/config.json");
  if (tokenizer.kind == HfTokenizerKind::bytes && cfg.vocab_size < 256)
    throw Error(checkpoint_dir + ": vocab_size is " + std::to_string(cfg.vocab_size) +
                ", too small for the byte tokenizer (256 ids); pass the run's tokenizer with --tokenizer FILE");
  const SafetensorsFile file = load_safetensors(weights);
  LanguageModel model(cfg, WeightInit::none);  // every weight is loaded next
  load_model_weights(model, file, weights);

  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : model.named_parameters()) tensors.emplace_back(hf_parameter_name(p.key()), p.value());
  std::map<std::string, std::string> meta = file.metadata;  // gqe's own (gqe_config, ...); transformers ignores it
  meta["format"] = "pt";  // transformers requires it
  // No token ids in the model config: gqe generates without a stop token, and so does generate() by default
  // (the tokenizer's eos token is for the harness: tokenizer_config.json).
  const ojson config = hf_config_json(cfg);

  write_folder_atomically(out_dir, [&](const std::string& dir) {
    save_safetensors(dir + "/model.safetensors", tensors, meta);
    fs::write_file_atomic(dir + "/config.json", config.dump(2) + "\n");
    fs::write_file_atomic(dir + "/configuration_gqe.py", kHfConfigurationPy);
    fs::write_file_atomic(dir + "/modeling_gqe.py", kHfModelingPy);
    write_tokenizer_files(dir, tokenizer, cfg);
  });
}

namespace {

// gqe's name of a floating-point dtype in an imported folder ("" for float32 and non-float types).
std::string converted_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kDouble: return "float64";
    default: return "";
  }
}

}  // namespace

HfImportReport import_hf(const std::string& hf_dir, const std::string& out_dir) {
  const std::string config_path = hf_dir + "/config.json", weights = hf_dir + "/model.safetensors";
  if (!fs::is_file(config_path)) throw Error(hf_dir + ": no config.json (expected a folder written by gqe export --format hf)");
  if (!fs::is_file(weights)) {
    if (fs::exists(hf_dir + "/model.safetensors.index.json"))
      throw Error(hf_dir + ": sharded weights (model.safetensors.index.json) are not supported; save with one model.safetensors");
    throw Error(hf_dir + ": no model.safetensors");
  }
  const ModelConfig cfg = model_config_from_hf(parse_json(fs::read_file(config_path), config_path), config_path);
  SafetensorsFile hf = load_safetensors(weights);
  HfImportReport report;
  // A folder transformers saved after .half() or with dtype=torch.bfloat16 holds that dtype: gqe's weights are
  // float32, and float16 / bfloat16 values are float32 values exactly (float64 ones are rounded). Other
  // dtypes (integers) are left for load_model_weights to refuse, naming the tensor.
  for (auto& [name, t] : hf.tensors) {
    const std::string from = converted_dtype_name(t.scalar_type());
    if (from.empty()) continue;
    t = t.to(at::kFloat);
    ++report.converted[from];
  }
  SafetensorsFile file;  // the same tensors under gqe's names
  const at::Tensor* embed = hf.find("model.embed_tokens.weight");
  for (auto& [name, t] : hf.tensors) {
    // transformers may save a tied head too; it must then be the embedding itself.
    if (name == "lm_head.weight" && cfg.tie_word_embeddings) {
      if (!embed || !t.equal(*embed))
        throw FormatError(weights + ": tensor 'lm_head.weight' differs from the embedding, but the config ties them");
      continue;
    }
    try {
      file.tensors.emplace_back(gqe_parameter_name(name), t);
    } catch (const FormatError& e) {
      throw FormatError(weights + ": " + e.what());
    }
  }
  LanguageModel model(cfg, WeightInit::none);  // every weight is loaded next
  load_model_weights(model, file, weights);
  std::map<std::string, std::string> meta = hf.metadata;
  meta.erase("format");      // save_model_checkpoint writes both
  meta.erase("gqe_config");

  // The tokenizer, recorded as `gqe train` records a run's, so that generate, eval and export find it.
  const std::string tok_json = hf_dir + "/tokenizer.json", spm = hf_dir + "/tokenizer.model";
  write_folder_atomically(out_dir, [&](const std::string& dir) {
    save_model_checkpoint(dir, model, meta);
    // Only regular files inside the folder: a link there must not pull a file from elsewhere into the run
    // (a link, dangling or not, counts as present, so that it is refused rather than skipped).
    auto present = [](const std::string& p) {
      std::error_code ec;
      return std::filesystem::symlink_status(p, ec).type() != std::filesystem::file_type::not_found;
    };
    if (present(spm)) {
      record_run_tokenizer(dir, fs::regular_file_inside(hf_dir, "tokenizer.model"));
    } else if (present(tok_json)) {
      const std::string path = fs::regular_file_inside(hf_dir, "tokenizer.json");
      record_run_tokenizer(dir, is_byte_level_tokenizer_json(fs::read_file(path)) ? "bytes" : path);
    }
  });
  return report;
}

HfTokenizerSource hf_tokenizer_of_checkpoint(const std::string& dir, const std::string& spec) {
  const TokenizerFiles files =
      spec.empty() ? run_tokenizer_files(dir, load_model_config(dir + "/config.json").vocab_size)
                   : resolve_tokenizer_files(spec);
  switch (files.kind) {
    case TokenizerKind::kBytes:
      return {HfTokenizerKind::bytes, ""};
    case TokenizerKind::kSentencePiece:
      return {HfTokenizerKind::sentencepiece, files.paths.front()};
    case TokenizerKind::kBpe:
      // gqe's end-of-text token of the file, which the export names for the harness (hf_export.h).
      if (files.paths.size() == 1)
        return {HfTokenizerKind::tokenizer_json, files.paths.front(), load_tokenizer(files)->eos_id()};
      throw Error("gqe export: the tokenizer is GPT-2's vocab.json + merges.txt (" + files.paths.front() +
                  "); transformers loads a tokenizer.json: pass one with --tokenizer");
  }
  return {HfTokenizerKind::bytes, ""};
}


}  // namespace gqe
