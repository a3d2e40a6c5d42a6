#include "gqe/tokenizers/sentencepiece.h"

#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <mutex>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/tokenizers/spm_c_api.h"
#include "gqe/tokenizers/spm_model.h"

namespace gqe {

struct SpmLibrary {
  void* handle = nullptr;
  std::string path;
  decltype(&gqe_spm_abi_version) abi_version = nullptr;
  decltype(&gqe_spm_train) train = nullptr;
  decltype(&gqe_spm_load_bytes) load_bytes = nullptr;
  decltype(&gqe_spm_free) free = nullptr;
  decltype(&gqe_spm_encode) encode = nullptr;
  decltype(&gqe_spm_decode) decode = nullptr;
  decltype(&gqe_spm_piece_size) piece_size = nullptr;
  decltype(&gqe_spm_eos_id) eos_id = nullptr;
  decltype(&gqe_spm_bos_id) bos_id = nullptr;
  decltype(&gqe_spm_unk_id) unk_id = nullptr;
};

namespace {

constexpr size_t kErrCap = 1024;
const char* kLibName = "libgqe_spm.so";

std::string executable_dir() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string p(buf, static_cast<size_t>(n));
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? "" : p.substr(0, slash);
}

std::vector<std::string> candidate_paths() {
  std::vector<std::string> c;
  if (const char* env = std::getenv("GQE_SPM_LIB"); env && *env) c.push_back(env);
  const std::string dir = executable_dir();
  if (!dir.empty()) {
    c.push_back(dir + "/" + kLibName);
    c.push_back(dir + "/../lib/" + kLibName);
  }
#ifdef GQE_SPM_BUILD_PATH
  c.push_back(GQE_SPM_BUILD_PATH);
#endif
  c.push_back(kLibName);  // the dynamic loader's search path
  return c;
}

template <typename F>
void bind(SpmLibrary& lib, F& fn, const char* name) {
  fn = reinterpret_cast<F>(::dlsym(lib.handle, name));
  if (!fn) throw Error(lib.path + ": missing symbol " + name + " (stale libgqe_spm.so? rebuild it)");
}

SpmLibrary load_library() {
  std::string tried;
  for (const std::string& p : candidate_paths()) {
    if (p.find('/') != std::string::npos && ::access(p.c_str(), R_OK) != 0) {
      tried += "\n  " + p + " (not found)";
      continue;
    }
    // RTLD_DEEPBIND: the shim and its libsentencepiece resolve symbols in their own scope first, so their
    // bundled protobuf-lite never binds to libtorch's libprotobuf (the crash described in spm_c_api.h).
    void* h = ::dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
      const char* e = ::dlerror();
      tried += "\n  " + p + " (" + (e ? e : "dlopen failed") + ")";
      continue;
    }
    SpmLibrary lib;
    lib.handle = h;
    lib.path = p;
    bind(lib, lib.abi_version, "gqe_spm_abi_version");
    if (lib.abi_version() != GQE_SPM_ABI_VERSION)
      throw Error(p + ": ABI version " + std::to_string(lib.abi_version()) + ", expected " +
                  std::to_string(GQE_SPM_ABI_VERSION) + " (rebuild libgqe_spm.so)");
    bind(lib, lib.train, "gqe_spm_train");
    bind(lib, lib.load_bytes, "gqe_spm_load_bytes");
    bind(lib, lib.free, "gqe_spm_free");
    bind(lib, lib.encode, "gqe_spm_encode");
    bind(lib, lib.decode, "gqe_spm_decode");
    bind(lib, lib.piece_size, "gqe_spm_piece_size");
    bind(lib, lib.eos_id, "gqe_spm_eos_id");
    bind(lib, lib.bos_id, "gqe_spm_bos_id");
    bind(lib, lib.unk_id, "gqe_spm_unk_id");
    return lib;
  }
  throw Error(std::string("SentencePiece support needs ") + kLibName +
              " (built with gqe when libsentencepiece-dev is installed); set GQE_SPM_LIB to its path. Tried:" +
              tried);
}

}  // namespace

const SpmLibrary& spm_library() {
  // Not a function-local static: a failed load must be retried and reported on every call.
  static std::mutex mu;
  static std::unique_ptr<SpmLibrary> lib;
  std::lock_guard<std::mutex> lock(mu);
  if (!lib) lib = std::make_unique<SpmLibrary>(load_library());
  return *lib;
}

std::string spm_library_path() { return spm_library().path; }

void train_sentencepiece(const SpmTrainOptions& opt) {
  if (opt.inputs.empty()) throw Error("tokenizer train: no input files");
  if (opt.model_prefix.empty()) throw Error("tokenizer train: no model prefix");
  if (opt.vocab_size < 8)
    throw Error("tokenizer train: vocab_size " + std::to_string(opt.vocab_size) + " is too small");
  std::string inputs;
  for (const auto& p : opt.inputs) {
    if (p.find(',') != std::string::npos)
      throw Error(p + ": SentencePiece input paths cannot contain ','");
    if (::access(p.c_str(), R_OK) != 0) throw Error(p + ": cannot read tokenizer training input");
    inputs += (inputs.empty() ? "" : ",") + p;
  }
  std::string o;
  auto add = [&](const std::string& k, const std::string& v) { o += k + "=" + v + "\n"; };
  add("input", inputs);
  add("model_prefix", opt.model_prefix);
  add("vocab_size", std::to_string(opt.vocab_size));
  add("model_type", opt.model_type);
  add("num_threads", std::to_string(opt.num_threads));
  add("character_coverage", std::to_string(opt.character_coverage));
  if (opt.input_sentence_size > 0) {
    add("input_sentence_size", std::to_string(opt.input_sentence_size));
    add("shuffle_input_sentence", "true");
  }
  // Exact round trips: no Unicode normalisation, keep every space, any byte encodable.
  add("normalization_rule_name", "identity");
  add("remove_extra_whitespaces", "false");
  // No "▁" glued to the start of every encode() call: then encoding line-aligned chunks separately gives
  // the same ids as encoding the whole text, and decode(encode(x)) == x holds for leading spaces too.
  add("add_dummy_prefix", "false");
  add("byte_fallback", "true");
  add("split_digits", "true");
  add("unk_id", "0");
  add("bos_id", "1");
  add("eos_id", "2");
  add("pad_id", "-1");
  add("minloglevel", "1");  // SentencePiece's per-iteration logging is very chatty
  for (const auto& e : opt.extra) {
    if (e.find('=') == std::string::npos) throw Error("tokenizer train: option '" + e + "' is not key=value");
    o += e + "\n";  // later keys override the defaults above
  }
  const SpmLibrary& lib = spm_library();
  // Train in a child process: SentencePiece 0.1.97 crashes (SIGSEGV) on some bad inputs, e.g. a vocab_size
  // far beyond what the text supports; a crash must become an error message, not take gqe down.
  int fds[2];
  if (::pipe(fds) != 0) throw Error("tokenizer train: pipe failed: " + std::string(std::strerror(errno)));
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("tokenizer train: fork failed: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    ::close(fds[0]);
    char err[kErrCap] = {0};
    const int rc = lib.train(o.c_str(), err, sizeof err);
    if (rc != 0) {
      const size_t n = std::strlen(err);
      if (::write(fds[1], err, n) < 0) {
      }
    }
    ::_exit(rc == 0 ? 0 : 1);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    msg.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status))
    throw Error("SentencePiece training (" + opt.model_prefix + ") crashed with signal " +
                std::to_string(WTERMSIG(status)) + " (SentencePiece does this on some bad inputs, e.g. a vocab_size " +
                std::to_string(opt.vocab_size) + " larger than the text supports: try a smaller --vocab-size)");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("SentencePiece training (" + opt.model_prefix + ") failed: " + (msg.empty() ? "no message" : msg));
}

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : lib_(spm_library()), path_(model_path) {
  // SentencePiece trusts the offsets inside a model's normalisation tables (a crafted one crashes it):
  // parse_spm_model checks them, and the library gets exactly the bytes checked.
  const std::string bytes = fs::read_file(model_path, fs::kTokenizerFileLimit);
  parse_spm_model(bytes, model_path);
  char err[kErrCap] = {0};
  model_ = lib_.load_bytes(bytes.data(), bytes.size(), err, sizeof err);
  if (!model_) throw Error(model_path + ": cannot load SentencePiece model: " + err);
  auto* m = static_cast<const gqe_spm*>(model_);
  piece_size_ = lib_.piece_size(m);
  eos_ = lib_.eos_id(m);
  bos_ = lib_.bos_id(m);
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (model_) lib_.free(static_cast<gqe_spm*>(model_));
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text) const {
  auto* m = static_cast<const gqe_spm*>(model_);
  char err[kErrCap] = {0};
  // BPE with byte fallback yields at most one id per byte, plus the dummy-prefix piece.
  std::vector<int32_t> ids(text.size() + 8);
  int64_t n = lib_.encode(m, text.data(), text.size(), ids.data(), static_cast<int64_t>(ids.size()), err, sizeof err);
  if (n > static_cast<int64_t>(ids.size())) {
    ids.resize(static_cast<size_t>(n));
    n = lib_.encode(m, text.data(), text.size(), ids.data(), n, err, sizeof err);
  }
  if (n < 0) throw Error(path_ + ": SentencePiece encode failed: " + err);
  return std::vector<int64_t>(ids.begin(), ids.begin() + n);
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& tokens) const {
  auto* m = static_cast<const gqe_spm*>(model_);
  // Out-of-vocabulary ids split the sequence; each becomes U+FFFD so a padded model's output still prints.
  std::string out;
  std::vector<int32_t> run;
  char err[kErrCap] = {0};
  auto flush = [&]() {
    if (run.empty()) return;
    std::string buf(run.size() * 8 + 16, '\0');
    int64_t n = lib_.decode(m, run.data(), run.size(), buf.data(), static_cast<int64_t>(buf.size()), err, sizeof err);
    if (n > static_cast<int64_t>(buf.size())) {
      buf.resize(static_cast<size_t>(n));
      n = lib_.decode(m, run.data(), run.size(), buf.data(), n, err, sizeof err);
    }
    if (n < 0) throw Error(path_ + ": SentencePiece decode failed: " + err);
    out.append(buf.data(), static_cast<size_t>(n));
    run.clear();
  };
  for (int64_t t : tokens) {
    if (t >= 0 && t < piece_size_) {
      run.push_back(static_cast<int32_t>(t));
    } else {
      flush();
      out += "\xEF\xBF\xBD";
    }
  }
  flush();
  return out;
}

}  // namespace gqe
