// libgqe_spm.so: SentencePiece behind a C interface (gqe/tokenizers/spm_c_api.h). Built as its own shared library
// and never linked into a libtorch process: libgqe loads it with dlopen (see spm_c_api.h for why).
// Torch-free on purpose; compile with hidden visibility so that only the gqe_spm_* functions are exported.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <unordered_map>
#include <vector>

#include "gqe/tokenizers/spm_c_api.h"

#define GQE_SPM_EXPORT __attribute__((visibility("default")))

struct gqe_spm {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

void set_err(char* err, size_t cap, const std::string& msg) {
  if (!err || cap == 0) return;
  const size_t n = std::min(cap - 1, msg.size());
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

}  // namespace

extern "C" {

GQE_SPM_EXPORT int gqe_spm_abi_version(void) { return GQE_SPM_ABI_VERSION; }

GQE_SPM_EXPORT int gqe_spm_train(const char* options, char* err, size_t err_cap) {
  try {
    std::unordered_map<std::string, std::string> kwargs;
    std::string all(options ? options : "");
    size_t start = 0;
    while (start < all.size()) {
      size_t nl = all.find('\n', start);
      if (nl == std::string::npos) nl = all.size();
      const std::string line = all.substr(start, nl - start);
      start = nl + 1;
      if (line.empty()) continue;
      const size_t eq = line.find('=');
      if (eq == std::string::npos) {
        set_err(err, err_cap, "trainer option '" + line + "' is not key=value");
        return 1;
      }
      kwargs[line.substr(0, eq)] = line.substr(eq + 1);
    }
    const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
    if (!status.ok()) {
      set_err(err, err_cap, status.ToString());
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    set_err(err, err_cap, e.what());
    return 1;
  }
}

GQE_SPM_EXPORT gqe_spm* gqe_spm_load_bytes(const char* data, size_t len, char* err, size_t err_cap) {
  try {
    auto* m = new gqe_spm;
    const auto status = m->sp.LoadFromSerializedProto(std::string_view(data, len));
    if (!status.ok()) {
      set_err(err, err_cap, status.ToString());
      delete m;
      return nullptr;
    }
    return m;
  } catch (const std::exception& e) {
    set_err(err, err_cap, e.what());
    return nullptr;
  }
}

GQE_SPM_EXPORT void gqe_spm_free(gqe_spm* m) { delete m; }

GQE_SPM_EXPORT int64_t gqe_spm_encode(const gqe_spm* m, const char* text, size_t len, int32_t* ids, int64_t cap,
                                      char* err, size_t err_cap) {
  try {
    std::vector<int> out;
    const auto status = m->sp.Encode(std::string_view(text, len), &out);
    if (!status.ok()) {
      set_err(err, err_cap, status.ToString());
      return -1;
    }
    const int64_t n = static_cast<int64_t>(out.size());
    std::copy_n(out.begin(), std::min(n, cap), ids);
    return n;
  } catch (const std::exception& e) {
    set_err(err, err_cap, e.what());
    return -1;
  }
}

GQE_SPM_EXPORT int64_t gqe_spm_decode(const gqe_spm* m, const int32_t* ids, size_t n, char* out, int64_t cap,
                                      char* err, size_t err_cap) {
  try {
    const int size = m->sp.GetPieceSize();
    std::vector<int> v(ids, ids + n);
    for (int id : v)
      if (id < 0 || id >= size) {
        set_err(err, err_cap, "token id " + std::to_string(id) + " outside the vocabulary [0, " +
                                  std::to_string(size) + ")");
        return -1;
      }
    std::string text;
    const auto status = m->sp.Decode(v, &text);
    if (!status.ok()) {
      set_err(err, err_cap, status.ToString());
      return -1;
    }
    const int64_t len = static_cast<int64_t>(text.size());
    std::memcpy(out, text.data(), static_cast<size_t>(std::min(len, cap)));
    return len;
  } catch (const std::exception& e) {
    set_err(err, err_cap, e.what());
    return -1;
  }
}

GQE_SPM_EXPORT int32_t gqe_spm_piece_size(const gqe_spm* m) { return m->sp.GetPieceSize(); }
GQE_SPM_EXPORT int32_t gqe_spm_eos_id(const gqe_spm* m) { return m->sp.eos_id(); }
GQE_SPM_EXPORT int32_t gqe_spm_bos_id(const gqe_spm* m) { return m->sp.bos_id(); }
GQE_SPM_EXPORT int32_t gqe_spm_unk_id(const gqe_spm* m) { return m->sp.unk_id(); }

}  // extern "C"
