#include "gqe/tokenizers/bpe_tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstring>
#include <functional>
#include <queue>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"

namespace gqe {

const char* const kGpt2PretokenizerRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// How a Split step treats the regex matches (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct BpeTokenizer::PreStep {
  bool byte_level = false;        // ByteLevel (its regex, if any, is GPT-2's) rather than Split
  bool add_prefix_space = false;  // ByteLevel: a space before each piece that does not start with one
  bool invert = false;            // Split: the pieces are what the regex does not match
  SplitBehavior behavior = SplitBehavior::kIsolated;
  std::unique_ptr<UnicodeRegex> regex;  // null: no splitting (ByteLevel with use_regex false)
};

struct BpeTokenizer::AddedToken {
  std::string content;
  int32_t id = 0;
  bool lstrip = false, rstrip = false, single_word = false;
};

// Added tokens matched in one pass, leftmost-longest: candidates by first byte, longest first.
struct BpeTokenizer::AddedGroup {
  std::vector<AddedToken> tokens;
  std::vector<std::vector<int32_t>> by_first_byte = std::vector<std::vector<int32_t>>(256);
};

namespace {

std::atomic<uint64_t> g_next_serial{1};

// GPT-2's reversible byte <-> unicode mapping: printable bytes stand for themselves, the rest are shifted
// to code points 256 and up, so every vocabulary string is printable text.
std::vector<uint32_t> byte_to_codepoint() {
  std::vector<uint32_t> cp(256, 0);
  std::vector<bool> direct(256, false);
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) cp[b] = direct[b] ? uint32_t(b) : next++;
  return cp;
}

// Decodes one UTF-8 code point at s[i]; returns its length, 0 when invalid.
size_t utf8_decode(const std::string& s, size_t i, uint32_t* cp) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) {
    const auto d = static_cast<unsigned char>(s[i + k]);
    if ((d >> 6) != 2) return 0;
    v = (v << 6) | (d & 0x3F);
  }
  *cp = v;
  return len;
}

// A vocabulary string in the byte-level alphabet -> its raw bytes; false if a character is outside it.
bool byte_level_to_bytes(const std::string& token, std::string* out) {
  static const std::vector<int> inverse = [] {
    std::vector<int> inv(324, -1);
    const auto cp = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) inv[cp[b]] = b;
    return inv;
  }();
  out->clear();
  for (size_t i = 0; i < token.size();) {
    uint32_t cp = 0;
    const size_t len = utf8_decode(token, i, &cp);
    if (len == 0 || cp >= inverse.size() || inverse[cp] < 0) return false;
    out->push_back(static_cast<char>(inverse[cp]));
    i += len;
  }
  return true;
}

}  // namespace

std::string bytes_to_byte_level(const std::string& raw) {
  static const std::vector<uint32_t> cp = byte_to_codepoint();
  std::string out;
  for (const char ch : raw) {
    const uint32_t c = cp[static_cast<unsigned char>(ch)];
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {  // all below U+0800: two bytes
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

namespace {

size_t utf8_length_at(const char* p, size_t n) {
  const auto c = static_cast<unsigned char>(p[0]);
  const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  return std::min(len, n);
}

// Word characters and whitespace for added tokens' single_word / lstrip / rstrip: ASCII classes, and every
// non-ASCII byte counts as part of a word (no special token in GPT-2 or LLaMA-3 uses these options).
bool is_word_byte(unsigned char c) { return c >= 0x80 || std::isalnum(c) || c == '_'; }
bool is_space_byte(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// The per-thread cache of piece -> ids; pieces are short words, so most of a text's pieces hit it.
struct PieceCache {
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<int32_t>> map;
  std::string key;
};
constexpr size_t kCacheMaxPieceBytes = 64;
constexpr size_t kCacheMaxEntries = 1 << 18;

PieceCache& piece_cache(uint64_t owner) {
  thread_local PieceCache c;
  if (c.owner != owner) {
    c.map.clear();
    c.owner = owner;
  }
  return c;
}

// ---- loading ----

struct Loader {
  std::string path;
  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw FormatError(path + ": field '" + field + "': " + what);
  }
  const nlohmann::json& member(const nlohmann::json& obj, const std::string& key, const std::string& field) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail(field + key, "missing");
    return *it;
  }
  bool get_bool(const nlohmann::json& obj, const std::string& key, const std::string& field, bool def) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return def;
    if (!it->is_boolean()) fail(field + key, "expected true or false");
    return it->get<bool>();
  }
  std::string get_string(const nlohmann::json& obj, const std::string& key, const std::string& field) const {
    const auto& v = member(obj, key, field);
    if (!v.is_string()) fail(field + key, "expected a string");
    return v.get<std::string>();
  }
  // A token id below id_bound(tokens), for a file that defines `tokens` tokens. `token` names the token
  // in the message when the field does not.
  int32_t get_id(const nlohmann::json& v, const std::string& field, size_t tokens, const std::string& token = "") const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      fail(field, "expected a token id (an integer from 0 to 2^31-1)");
    const int64_t id = v.get<int64_t>();
    if (uint64_t(id) >= id_bound(tokens))
      fail(field, "id " + std::to_string(id) + (token.empty() ? "" : " of token '" + truncate_for_message(token) + "'") +
                      " is out of range: the file defines " + std::to_string(tokens) + " tokens, so ids below " +
                      std::to_string(id_bound(tokens)) + " are expected");
    return static_cast<int32_t>(id);
  }
  // The id table, the tokenizer's vocab_size and the embedding of a model trained with it are all sized by
  // the largest id, so an id far beyond the vocabulary (up to 2^31-1) would allocate gigabytes for a few
  // entries. Some files leave a gap of unused ids before their added tokens: room for that, no more.
  static size_t id_bound(size_t tokens) { return 2 * tokens + 1024; }
};

}  // namespace

BpeTokenizer::BpeTokenizer() : serial_(g_next_serial++) { std::fill(std::begin(byte_id_), std::end(byte_id_), -1); }
BpeTokenizer::~BpeTokenizer() = default;

namespace {

struct RawModel {
  std::vector<std::pair<std::string, int32_t>> vocab;  // as written (byte-level alphabet)
  std::vector<std::pair<std::string, std::string>> merges;
};

}  // namespace

// Shared by both file formats: vocabulary, merges, then the derived tables. vocab_where / merge_where
// name the place of a bad entry ("FILE: field 'model.merges[3]'", "merges.txt:5").
static void build_vocab_and_merges(const RawModel& raw, const std::string& vocab_where,
                                   const std::function<std::string(size_t)>& merge_where,
                                   std::vector<std::string>& token_bytes, std::vector<uint8_t>& used,
                                   std::unordered_map<std::string, int32_t>& bytes_to_id, int32_t* byte_id,
                                   std::unordered_map<uint64_t, std::pair<int32_t, int32_t>>& merges,
                                   std::unordered_map<std::string, int32_t>& by_text) {
  int32_t max_id = -1;
  for (const auto& [tok, id] : raw.vocab) max_id = std::max(max_id, id);
  token_bytes.assign(size_t(max_id + 1), std::string());
  used.assign(size_t(max_id + 1), 0);
  std::string bytes;
  for (const auto& [tok, id] : raw.vocab) {
    if (used[id])
      throw FormatError(vocab_where + ": id " + std::to_string(id) + " is given to two tokens (one is '" +
                        truncate_for_message(tok) + "')");
    used[id] = 1;
    by_text.emplace(tok, id);
    if (byte_level_to_bytes(tok, &bytes)) {
      token_bytes[id] = bytes;
      bytes_to_id.emplace(bytes, id);
      if (bytes.size() == 1) byte_id[static_cast<unsigned char>(bytes[0])] = id;
    } else {
      token_bytes[id] = tok;  // not in the byte-level alphabet (e.g. a special token): its text
    }
  }
  for (size_t i = 0; i < raw.merges.size(); ++i) {
    const auto& [a, b] = raw.merges[i];
    auto ia = by_text.find(a), ib = by_text.find(b), im = by_text.find(a + b);
    const char* what = ia == by_text.end() ? "token" : ib == by_text.end() ? "token" : "merged token";
    const std::string& missing = ia == by_text.end() ? a : ib == by_text.end() ? b : a + b;
    if (ia == by_text.end() || ib == by_text.end() || im == by_text.end())
      throw FormatError(merge_where(i) + ": " + what + " '" + truncate_for_message(missing) +
                        "' is not in the vocabulary");
    // A pair listed twice keeps its last rank, as Hugging Face's map construction does.
    merges[(uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second)] = {int32_t(i), im->second};
  }
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::string& path) {
  Loader L{path};
  if (!fs::is_file(path)) throw Error(path + ": tokenizer file not found");
  const nlohmann::json j = parse_json(fs::read_file(path, fs::kTokenizerFileLimit), path);
  if (!j.is_object()) throw FormatError(path + ": expected a JSON object (a Hugging Face tokenizer.json)");
  std::unique_ptr<BpeTokenizer> t(new BpeTokenizer());
  t->path_ = path;

  // model
  const auto& model = L.member(j, "model", "");
  if (!model.is_object()) L.fail("model", "expected an object");
  if (model.contains("type")) {
    const auto& ty = model["type"];
    if (!ty.is_string() || ty.get<std::string>() != "BPE")
      L.fail("model.type", "is " + truncate_for_message(ty.dump()) + "; only \"BPE\" models are supported");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0))
    L.fail("model.dropout", "BPE dropout is not supported (expected null)");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(k) && !model[k].is_null() && !(model[k].is_string() && model[k].get<std::string>().empty()))
      L.fail(std::string("model.") + k, "not supported by byte-level BPE (expected null)");
  t->fuse_unk_ = L.get_bool(model, "fuse_unk", "model.", false);
  t->byte_fallback_ = L.get_bool(model, "byte_fallback", "model.", false);
  t->ignore_merges_ = L.get_bool(model, "ignore_merges", "model.", false);

  RawModel raw;
  const auto& vocab = L.member(model, "vocab", "model.");
  if (!vocab.is_object()) L.fail("model.vocab", "expected an object of token: id");
  // Every id lies below the number of tokens the file defines (vocabulary plus added tokens; an added
  // token may repeat a vocabulary id, which only leaves room).
  const size_t id_bound =
      vocab.size() + (j.contains("added_tokens") && j["added_tokens"].is_array() ? j["added_tokens"].size() : 0);
  for (auto it = vocab.begin(); it != vocab.end(); ++it)
    raw.vocab.emplace_back(it.key(), L.get_id(it.value(), "model.vocab." + truncate_for_message(it.key()), id_bound));
  if (raw.vocab.empty()) L.fail("model.vocab", "is empty");
  const auto& merges = L.member(model, "merges", "model.");
  if (!merges.is_array()) L.fail("model.merges", "expected an array");
  raw.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& m = merges[i];
    const std::string field = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {  // "a b" (tokenizers before 0.20)
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos || sp == 0 || sp + 1 == s.size())
        L.fail(field, "expected \"left right\" (two tokens and one space), got '" + truncate_for_message(s) + "'");
      raw.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
      raw.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      L.fail(field, "expected \"left right\" or [\"left\", \"right\"]");
    }
  }
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> mm;
  std::unordered_map<std::string, int32_t> by_text;
  build_vocab_and_merges(
      raw, path + ": field 'model.vocab'",
      [&](size_t i) { return path + ": field 'model.merges[" + std::to_string(i) + "]'"; }, t->token_bytes_,
      t->id_used_, t->bytes_to_id_, t->byte_id_, mm, by_text);
  t->merges_.reserve(mm.size());
  for (const auto& [k, v] : mm) t->merges_[k] = {v.first, v.second};
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    if (!model["unk_token"].is_string()) L.fail("model.unk_token", "expected a string or null");
    auto it = by_text.find(model["unk_token"].get<std::string>());
    if (it == by_text.end()) L.fail("model.unk_token", "'" + model["unk_token"].get<std::string>() + "' is not in the vocabulary");
    t->unk_id_ = it->second;
  }

  // normalizer: none in byte-level tokenizers
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const auto& n = j["normalizer"];
    const bool empty_sequence = n.is_object() && n.value("type", "") == "Sequence" && n.contains("normalizers") &&
                                n["normalizers"].is_array() && n["normalizers"].empty();
    if (!empty_sequence)
      L.fail("normalizer", "normalizers are not supported (byte-level BPE has none; expected null), got type " +
                               truncate_for_message(n.is_object() && n.contains("type") ? n["type"].dump() : n.dump()));
  }

  // pre_tokenizer: ByteLevel, Split, or a Sequence of them
  const auto& pre = L.member(j, "pre_tokenizer", "");
  std::vector<std::pair<const nlohmann::json*, std::string>> flat;
  if (pre.is_object() && pre.value("type", "") == "Sequence") {
    const auto& list = L.member(pre, "pretokenizers", "pre_tokenizer.");
    if (!list.is_array()) L.fail("pre_tokenizer.pretokenizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i)
      flat.emplace_back(&list[i], "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]");
  } else if (!pre.is_null()) {
    flat.emplace_back(&pre, "pre_tokenizer");
  }
  bool has_byte_level = false;
  for (const auto& [p, field] : flat) {
    if (!p->is_object()) L.fail(field, "expected an object");
    const std::string type = p->contains("type") && (*p)["type"].is_string() ? (*p)["type"].get<std::string>() : "";
    auto step = std::make_unique<PreStep>();
    if (type == "ByteLevel") {
      step->byte_level = true;
      has_byte_level = true;
      // Hugging Face's defaults when a field is missing: add_prefix_space true, use_regex true.
      step->add_prefix_space = L.get_bool(*p, "add_prefix_space", field + ".", true);
      if (L.get_bool(*p, "use_regex", field + ".", true))
        step->regex = std::make_unique<UnicodeRegex>(kGpt2PretokenizerRegex, path + ": " + field);
    } else if (type == "Split") {
      const auto& pat = L.member(*p, "pattern", field + ".");
      const bool is_regex = pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string();
      const bool is_string = pat.is_object() && pat.contains("String") && pat["String"].is_string();
      if (!is_regex && !is_string) L.fail(field + ".pattern", "expected {\"Regex\": \"...\"} or {\"String\": \"...\"}");
      const std::string text = is_regex ? pat["Regex"].get<std::string>() : pat["String"].get<std::string>();
      if (text.empty()) L.fail(field + ".pattern", "is empty");
      step->regex = std::make_unique<UnicodeRegex>(text, path + ": field '" + field + ".pattern'", !is_regex);
      const std::string b = L.get_string(*p, "behavior", field + ".");
      if (b == "Removed") step->behavior = SplitBehavior::kRemoved;
      else if (b == "Isolated") step->behavior = SplitBehavior::kIsolated;
      else if (b == "MergedWithPrevious") step->behavior = SplitBehavior::kMergedWithPrevious;
      else if (b == "MergedWithNext") step->behavior = SplitBehavior::kMergedWithNext;
      else if (b == "Contiguous") step->behavior = SplitBehavior::kContiguous;
      else
        L.fail(field + ".behavior", "'" + truncate_for_message(b) +
                                        "': expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
      step->invert = L.get_bool(*p, "invert", field + ".", false);
    } else {
      L.fail(field + ".type", "'" + truncate_for_message(type) +
                                  "' is not supported (expected ByteLevel, Split or a Sequence of them)");
    }
    t->steps_.push_back(std::move(step));
  }
  if (!has_byte_level)
    L.fail("pre_tokenizer", "has no ByteLevel step: only byte-level BPE tokenizers (GPT-2, LLaMA-3 style) are supported");

  // added_tokens
  std::vector<AddedToken> plain, normalized;
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const auto& at = j["added_tokens"];
    if (!at.is_array()) L.fail("added_tokens", "expected an array");
    for (size_t i = 0; i < at.size(); ++i) {
      const std::string field = "added_tokens[" + std::to_string(i) + "]";
      if (!at[i].is_object()) L.fail(field, "expected an object");
      AddedToken a;
      a.content = L.get_string(at[i], "content", field + ".");
      a.id = L.get_id(L.member(at[i], "id", field + "."), field + ".id", id_bound, a.content);
      if (a.content.empty()) L.fail(field + ".content", "is empty");
      a.lstrip = L.get_bool(at[i], "lstrip", field + ".", false);
      a.rstrip = L.get_bool(at[i], "rstrip", field + ".", false);
      a.single_word = L.get_bool(at[i], "single_word", field + ".", false);
      const bool special = L.get_bool(at[i], "special", field + ".", false);
      // Hugging Face matches normalized tokens after the normalizer (none here) in a second pass;
      // special tokens are never normalized.
      (L.get_bool(at[i], "normalized", field + ".", !special) && !special ? normalized : plain).push_back(a);
      t->added_text_[a.id] = a.content;
    }
  }
  for (auto* group : {&plain, &normalized}) {
    if (group->empty()) continue;
    auto g = std::make_unique<AddedGroup>();
    g->tokens = *group;
    t->added_.push_back(std::move(g));
  }
  t->finish_loading();
  return t;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_vocab_merges(const std::string& vocab_path,
                                                              const std::string& merges_path) {
  for (const auto& p : {vocab_path, merges_path})
    if (!fs::is_file(p)) throw Error(p + ": tokenizer file not found");
  std::unique_ptr<BpeTokenizer> t(new BpeTokenizer());
  t->path_ = vocab_path;
  Loader LV{vocab_path};
  const nlohmann::json v = parse_json(fs::read_file(vocab_path, fs::kTokenizerFileLimit), vocab_path);
  if (!v.is_object()) throw FormatError(vocab_path + ": expected a JSON object of token: id (GPT-2 vocab.json)");
  RawModel raw;
  for (auto it = v.begin(); it != v.end(); ++it)
    raw.vocab.emplace_back(it.key(), LV.get_id(it.value(), truncate_for_message(it.key()), v.size()));
  if (raw.vocab.empty()) throw FormatError(vocab_path + ": the vocabulary is empty");
  const std::string text = fs::read_file(merges_path, fs::kTokenizerFileLimit);
  size_t line_no = 0;
  std::vector<size_t> merge_lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos)
      throw FormatError(merges_path + ":" + std::to_string(line_no) + ": expected \"left right\" (two tokens and one space), got '" +
                        truncate_for_message(line) + "'");
    raw.merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
    merge_lines.push_back(line_no);
  }
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> mm;
  std::unordered_map<std::string, int32_t> by_text;
  build_vocab_and_merges(
      raw, vocab_path, [&](size_t i) { return merges_path + ":" + std::to_string(merge_lines[i]); }, t->token_bytes_,
      t->id_used_, t->bytes_to_id_, t->byte_id_, mm, by_text);
  t->merges_.reserve(mm.size());
  for (const auto& [k, val] : mm) t->merges_[k] = {val.first, val.second};
  auto step = std::make_unique<PreStep>();
  step->byte_level = true;
  step->regex = std::make_unique<UnicodeRegex>(kGpt2PretokenizerRegex, vocab_path);
  t->steps_.push_back(std::move(step));
  auto eot = by_text.find("<|endoftext|>");
  if (eot != by_text.end()) {
    auto g = std::make_unique<AddedGroup>();
    g->tokens.push_back(AddedToken{"<|endoftext|>", eot->second});
    t->added_text_[eot->second] = "<|endoftext|>";
    t->added_.push_back(std::move(g));
  }
  t->finish_loading();
  return t;
}

void BpeTokenizer::finish_loading() {
  int64_t max_id = static_cast<int64_t>(token_bytes_.size()) - 1;
  for (const auto& [id, text] : added_text_) max_id = std::max(max_id, id);
  vocab_size_ = max_id + 1;
  // Added tokens decode as their text (they may lie outside the model's vocabulary).
  token_bytes_.resize(size_t(vocab_size_));
  id_used_.resize(size_t(vocab_size_), 0);
  for (const auto& [id, text] : added_text_) {
    token_bytes_[id] = text;
    id_used_[id] = 1;
  }
  for (auto& g : added_) {
    for (size_t i = 0; i < g->tokens.size(); ++i)
      g->by_first_byte[static_cast<unsigned char>(g->tokens[i].content[0])].push_back(int32_t(i));
    for (auto& list : g->by_first_byte)
      std::stable_sort(list.begin(), list.end(), [&](int32_t a, int32_t b) {
        return g->tokens[a].content.size() > g->tokens[b].content.size();
      });
  }
  for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"}) {
    const int64_t id = token_id(name);
    if (id >= 0) {
      eos_ = id;
      break;
    }
  }
}

int64_t BpeTokenizer::token_id(const std::string& text) const {
  for (const auto& [id, t] : added_text_)
    if (t == text) return id;
  auto it = bytes_to_id_.find(text);
  if (it != bytes_to_id_.end()) return it->second;
  for (size_t id = 0; id < token_bytes_.size(); ++id)
    if (id_used_[id] && token_bytes_[id] == text) return int64_t(id);
  return -1;
}

// ---- encoding ----

std::vector<int64_t> BpeTokenizer::encode(const std::string& text) const {
  TextBudget budget(text.size());  // the pre-tokenizer's matching work for the whole text, not per match
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 8);
  split_added(0, text.data(), text.size(), out);
  return out;
}

// Cuts group `g`'s added tokens out of [p, p+n) (Hugging Face's AddedVocabulary::find_matches); the text
// between them goes to the next group, and after the last to the pre-tokenizer.
void BpeTokenizer::split_added(size_t g, const char* p, size_t n, std::vector<int64_t>& out) const {
  if (n == 0) return;
  if (g == added_.size()) {
    pre_tokenize(0, p, n, out);
    return;
  }
  const AddedGroup& group = *added_[g];
  size_t done = 0;  // text before this offset is encoded
  uint64_t compares = 0;
  for (size_t i = 0; i < n;) {
    const auto& cands = group.by_first_byte[static_cast<unsigned char>(p[i])];
    const AddedToken* hit = nullptr;
    for (int32_t c : cands) {
      // Each comparison may run the length of a long added token at every position of the text: crafted
      // tokens make that quadratic, so it counts against the text's budget like the regexes.
      if ((++compares & 1023) == 0 && TextBudget::spent())
        throw Error(path_ + ": added tokens need too much work to find: " + TextBudget::describe() +
                    " (added tokens that are long and start alike)");
      const AddedToken& a = group.tokens[c];
      if (a.content.size() <= n - i && std::memcmp(p + i, a.content.data(), a.content.size()) == 0) {
        hit = &a;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + hit->content.size();
    i = stop;
    if (hit->single_word && ((start > 0 && is_word_byte(p[start - 1])) || (stop < n && is_word_byte(p[stop])))) continue;
    if (hit->lstrip)
      while (start > done && is_space_byte(p[start - 1])) --start;
    if (hit->rstrip)
      while (stop < n && is_space_byte(p[stop])) ++stop;
    split_added(g + 1, p + done, start - done, out);
    out.push_back(hit->id);
    done = i = stop;
  }
  split_added(g + 1, p + done, n - done, out);
}

void BpeTokenizer::pre_tokenize(size_t step, const char* p, size_t n, std::vector<int64_t>& out) const {
  if (n == 0) return;
  if (step == steps_.size()) {
    encode_piece(p, n, out);
    return;
  }
  const PreStep& s = *steps_[step];
  std::string prefixed;
  if (s.byte_level && s.add_prefix_space && p[0] != ' ') {
    prefixed.reserve(n + 1);
    prefixed.push_back(' ');
    prefixed.append(p, n);
    p = prefixed.data();
    n = prefixed.size();
  }
  if (!s.regex) {
    pre_tokenize(step + 1, p, n, out);
    return;
  }
  // Isolated (ByteLevel's and LLaMA-3's): every match and every gap is a piece; streamed.
  if (s.behavior == SplitBehavior::kIsolated) {
    size_t pos = 0, search = 0, b = 0, e = 0;
    while (search <= n && s.regex->find(p, n, search, &b, &e)) {
      pre_tokenize(step + 1, p + pos, b - pos, out);  // the gap
      pre_tokenize(step + 1, p + b, e - b, out);
      pos = e;
      search = e > b ? e : e + (e < n ? utf8_length_at(p + e, n - e) : 1);
    }
    pre_tokenize(step + 1, p + pos, n - pos, out);
    return;
  }
  // The other behaviors: Hugging Face's segment list (matches and gaps), then its folding rules.
  struct Seg {
    size_t b, e;
    bool match;
  };
  std::vector<Seg> segs;
  size_t pos = 0, search = 0, b = 0, e = 0;
  while (search <= n && s.regex->find(p, n, search, &b, &e)) {
    if (b > pos) segs.push_back({pos, b, false});
    segs.push_back({b, e, true});
    pos = e;
    search = e > b ? e : e + (e < n ? utf8_length_at(p + e, n - e) : 1);
  }
  if (pos < n) segs.push_back({pos, n, false});
  if (s.invert)
    for (auto& sg : segs) sg.match = !sg.match;
  std::vector<Seg> pieces;
  bool prev_match = false;
  switch (s.behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& sg : segs)
        if (!sg.match) pieces.push_back(sg);
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& sg : segs) {
        if (sg.match && !prev_match && !pieces.empty()) pieces.back().e = sg.e;
        else pieces.push_back(sg);
        prev_match = sg.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->match && !prev_match && !pieces.empty()) pieces.back().b = it->b;
        else pieces.push_back(*it);
        prev_match = it->match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    case SplitBehavior::kContiguous:
      for (const auto& sg : segs) {
        if (sg.match == prev_match && !pieces.empty()) pieces.back().e = sg.e;
        else pieces.push_back(sg);
        prev_match = sg.match;
      }
      break;
    case SplitBehavior::kIsolated:
      break;
  }
  for (const auto& pc : pieces) pre_tokenize(step + 1, p + pc.b, pc.e - pc.b, out);
}

void BpeTokenizer::encode_piece(const char* p, size_t n, std::vector<int64_t>& out) const {
  if (n == 1 && byte_id_[static_cast<unsigned char>(p[0])] >= 0) {
    out.push_back(byte_id_[static_cast<unsigned char>(p[0])]);
    return;
  }
  PieceCache& cache = piece_cache(serial_);
  const bool cacheable = n <= kCacheMaxPieceBytes;
  if (cacheable) {
    cache.key.assign(p, n);
    auto it = cache.map.find(cache.key);
    if (it != cache.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  if (ignore_merges_) {  // a piece that is itself a token is not merged (LLaMA-3)
    auto it = bytes_to_id_.find(cacheable ? cache.key : std::string(p, n));
    if (it != bytes_to_id_.end()) ids.push_back(it->second);
  }
  if (ids.empty()) merge_piece(p, n, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable && cache.map.size() < kCacheMaxEntries) cache.map.emplace(cache.key, std::move(ids));
}

// BPE over the piece's bytes, as Hugging Face's Word::merge_all: a min-heap of (rank, position) pairs;
// entries made stale by an earlier merge are skipped when popped.
void BpeTokenizer::merge_piece(const char* p, size_t n, std::vector<int32_t>& ids) const {
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    int32_t id = byte_id_[c];
    if (id < 0 && byte_fallback_) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", c);
      auto it = bytes_to_id_.find(name);
      if (it != bytes_to_id_.end()) id = it->second;
    }
    if (id < 0) {
      if (unk_id_ < 0) continue;  // Hugging Face drops a byte it has no token for when there is no unk
      if (fuse_unk_ && !sym.empty() && sym.back().id == unk_id_) continue;
      id = unk_id_;
    }
    const int32_t k = int32_t(sym.size());
    sym.push_back({id, k - 1, k + 1, true});
  }
  if (sym.empty()) return;
  sym.back().next = -1;
  struct Cand {
    int32_t rank, pos, id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto lookup = [&](int32_t a, int32_t b) {
    auto it = merges_.find((uint64_t(uint32_t(a)) << 32) | uint32_t(b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t i = 0; i + 1 < sym.size(); ++i)
    if (const Merge* m = lookup(sym[i].id, sym[i + 1].id)) heap.push({m->rank, int32_t(i), m->id});
  while (!heap.empty()) {
    const Cand top = heap.top();
    heap.pop();
    Symbol& s = sym[top.pos];
    if (!s.alive || s.next < 0) continue;
    const Symbol right = sym[s.next];
    const Merge* cur = lookup(s.id, right.id);
    if (!cur || cur->id != top.id) continue;  // stale
    sym[s.next].alive = false;
    s.id = top.id;
    s.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (s.prev >= 0)
      if (const Merge* m = lookup(sym[s.prev].id, s.id)) heap.push({m->rank, s.prev, m->id});
    if (s.next >= 0)
      if (const Merge* m = lookup(s.id, sym[s.next].id)) heap.push({m->rank, top.pos, m->id});
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& tokens) const {
  std::string out;
  for (int64_t t : tokens) {
    if (t >= 0 && t < vocab_size_ && id_used_[t]) out += token_bytes_[t];
    else out += "\xEF\xBF\xBD";
  }
  return out;
}

}  // namespace gqe
