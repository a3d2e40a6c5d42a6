#include "gqe/tokenizers/stream_decoder.h"

namespace gqe {

namespace {
// A run of pending tokens this long is released anyway: the model is producing bytes that never form a
// character, and the user should see them rather than nothing.
constexpr size_t kMaxPending = 16;
const std::string kReplacement = "\xEF\xBF\xBD";
}  // namespace

bool ends_in_partial_utf8(const std::string& s) {
  // Look back over at most 3 continuation bytes for the lead byte.
  for (size_t k = 1; k <= 4 && k <= s.size(); ++k) {
    const auto c = static_cast<unsigned char>(s[s.size() - k]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    const size_t need = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return c >= 0x80 && c < 0xF8 && need > k;
  }
  return false;
}

std::string StreamDecoder::push(int64_t token) {
  pending_.push_back(token);
  std::string text = tok_.decode(pending_);
  const bool waiting = ends_in_partial_utf8(text) ||
                       (text.size() >= 3 && text.compare(text.size() - 3, 3, kReplacement) == 0);
  if (waiting && pending_.size() < kMaxPending) return "";
  pending_.clear();
  return text;
}

std::string StreamDecoder::finish() {
  std::string text = pending_.empty() ? "" : tok_.decode(pending_);
  pending_.clear();
  return text;
}

}  // namespace gqe
