#include "gqe/eval/text.h"

#include <vector>

namespace gqe::eval {

namespace {

// Decodes the code point starting at s[i]; sets `len` to its byte length. Malformed sequences decode
// as the single byte (so nothing is lost when we re-encode the untouched bytes).
uint32_t decode_at(const std::string& s, size_t i, size_t& len) {
  const auto b = [&](size_t j) { return static_cast<unsigned char>(s[j]); };
  const unsigned char c = b(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    len = 1;
    return c;
  }
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t j = 1; j < n; ++j) {
    if ((b(i + j) & 0xC0) != 0x80) {
      len = 1;
      return c;
    }
    cp = (cp << 6) | (b(i + j) & 0x3F);
  }
  len = n;
  return cp;
}

std::string encode(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
  return out;
}

struct CodePoint {
  uint32_t cp;
  size_t pos, len;
};

std::vector<CodePoint> split(const std::string& s) {
  std::vector<CodePoint> out;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    uint32_t cp = decode_at(s, i, len);
    out.push_back({cp, i, len});
    i += len;
  }
  return out;
}

uint32_t lower_cp(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;  // Latin-1 capitals
  return cp;
}

// Title case of the first character (Python 3.8+ capitalize uses the title-case mapping).
std::string title_cp(uint32_t cp) {
  if (cp >= 'a' && cp <= 'z') return encode(cp - 32);
  if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return encode(cp - 32);  // Latin-1 small letters
  if (cp == 0xDF) return "Ss";                                          // sharp s
  if (cp == 0xFF) return encode(0x178);                                 // y with diaeresis
  if (cp == 0xB5) return encode(0x39C);                                 // micro sign -> Greek Mu
  return encode(cp);
}

}  // namespace

bool is_python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

std::string py_rstrip(const std::string& s) {
  auto cps = split(s);
  size_t end = cps.size();
  while (end > 0 && is_python_space(cps[end - 1].cp)) --end;
  return end == 0 ? std::string() : s.substr(0, cps[end - 1].pos + cps[end - 1].len);
}

std::string py_lstrip(const std::string& s) {
  auto cps = split(s);
  size_t begin = 0;
  while (begin < cps.size() && is_python_space(cps[begin].cp)) ++begin;
  return begin == cps.size() ? std::string() : s.substr(cps[begin].pos);
}

std::string py_drop_last(const std::string& s) {
  auto cps = split(s);
  return cps.empty() ? std::string() : s.substr(0, cps.back().pos);
}

std::string py_lower_first(const std::string& s) {
  auto cps = split(s);
  if (cps.empty()) return s;
  if (cps[0].len == 1 && cps[0].cp >= 0x80) return s;  // a stray byte: kept as it is
  return encode(lower_cp(cps[0].cp)) + s.substr(cps[0].len);
}

std::string py_strip(const std::string& s) {
  auto cps = split(s);
  size_t begin = 0, end = cps.size();
  while (begin < end && is_python_space(cps[begin].cp)) ++begin;
  while (end > begin && is_python_space(cps[end - 1].cp)) --end;
  if (begin == end) return std::string();
  return s.substr(cps[begin].pos, cps[end - 1].pos + cps[end - 1].len - cps[begin].pos);
}

std::string py_capitalize(const std::string& s) {
  auto cps = split(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint32_t cp = cps[i].cp;
    if (cps[i].len == 1 && cp >= 0x80) {
      out.push_back(s[cps[i].pos]);  // a stray byte: keep it as it is
    } else {
      out += i == 0 ? title_cp(cp) : encode(lower_cp(cp));
    }
  }
  return out;
}

int64_t py_len(const std::string& s) { return int64_t(split(s).size()); }

std::string py_replace(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  size_t i = 0;
  while (true) {
    size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out += to;
    i = j + from.size();
  }
  out.append(s, i, std::string::npos);
  return out;
}

std::string remove_bracket_tags(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '[') {
      // The lazy `.*?` stops at the first ']' but cannot cross a newline; if it fails here the regex
      // engine retries at the next character, so '[' is kept.
      size_t j = i + 1;
      while (j < s.size() && s[j] != ']' && s[j] != '\n') ++j;
      if (j < s.size() && s[j] == ']') {
        i = j + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

std::string hellaswag_preprocess(const std::string& text) {
  std::string t = py_strip(text);
  t = py_replace(t, " [title]", ". ");
  t = remove_bracket_tags(t);
  return py_replace(t, "  ", " ");
}

}  // namespace gqe::eval
