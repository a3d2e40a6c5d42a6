#include "gqe/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <limits>
#include <nlohmann/json.hpp>

#include "gqe/core/error.h"
#include "gqe/core/fs.h"
#include "gqe/core/json.h"

namespace gqe {
using nlohmann::json;

namespace {

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
};
const DtypeInfo kDtypes[] = {{"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},
                             {"BF16", at::kBFloat16}, {"I64", at::kLong}, {"I32", at::kInt},
                             {"I16", at::kShort},    {"I8", at::kChar},    {"U8", at::kByte},
                             {"BOOL", at::kBool}};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw Error(std::string("safetensors: unsupported tensor dtype ") + c10::toString(t));
}

bool dtype_from_name(const std::string& n, at::ScalarType& out) {
  for (const auto& d : kDtypes)
    if (n == d.name) {
      out = d.type;
      return true;
    }
  return false;
}

// The file mapped whole, private and writable (a tensor written to copies its pages; the file never
// changes), its pages read in at once: the tensors are views into it, and it is unmapped with the last.
struct Mapping {
  void* base = MAP_FAILED;
  size_t size = 0;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(const std::string& path, size_t n) : size(n) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    // Populated read-only, then made writable: populating a writable private mapping would copy every page
    // up front; this way the page cache's pages are mapped and only a page written to is copied.
    base = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    ::close(fd);
    if (base != MAP_FAILED && ::mprotect(base, n, PROT_READ | PROT_WRITE) != 0) {
      ::munmap(base, n);
      base = MAP_FAILED;
    }
  }
  ~Mapping() {
    if (base != MAP_FAILED) ::munmap(base, size);
  }
  bool ok() const { return base != MAP_FAILED; }
};

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

}  // namespace

const at::Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || header.contains(name)) throw Error(path + ": duplicate or reserved tensor name '" + name + "'");
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t nbytes = uint64_t(c.numel()) * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(c);
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // pad so the data starts 8-byte aligned
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t n = h.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += h;
  for (const auto& c : data) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  fs::write_file_atomic(path, out);
}

SafetensorsFile load_safetensors(const std::string& path) {
  try {
    fs::check_regular_file(path);  // a FIFO or device has no size to check the header against
  } catch (const Error& e) {
    throw FormatError(e.what());  // what callers of a weights file catch
  }
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw FormatError(path + ": cannot open safetensors file");
  const uint64_t file_size = uint64_t(f.tellg());
  f.seekg(0);
  auto bad = [&](const std::string& what) -> FormatError { return FormatError(path + ": not a valid safetensors file: " + what); };
  if (file_size < 8) throw bad("shorter than the 8-byte header length (" + std::to_string(file_size) + " bytes)");
  uint64_t hlen = 0;
  f.read(reinterpret_cast<char*>(&hlen), 8);
  if (hlen > kMaxSafetensorsHeaderBytes)
    throw bad("header length " + std::to_string(hlen) + " exceeds the format's limit of " +
              std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  if (hlen > file_size - 8)
    throw bad("header length " + std::to_string(hlen) + " exceeds the file size " + std::to_string(file_size) +
              " (truncated?)");
  std::string htext(hlen, '\0');
  f.read(htext.data(), std::streamsize(hlen));
  // The header length must be exact: the JSON object fills it, followed by nothing but the padding
  // writers add for alignment (spaces; like the reference implementation, any JSON whitespace). A length
  // cut short inside the padding still parses but shifts every tensor: the tiling check below refuses
  // that, as the reference implementation does.
  const size_t last = htext.find_last_not_of(" \t\n\r");
  if (last == std::string::npos || htext[last] != '}')
    throw bad("header length " + std::to_string(hlen) + " does not end the JSON header (it must end with '}' " +
              "followed by nothing but whitespace padding)");
  json header;
  try {
    header = parse_json(htext, path + " (safetensors header)");
  } catch (const JsonError& e) {
    throw bad(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw bad("header is not a JSON object");
  const uint64_t data_size = file_size - 8 - hlen;

  SafetensorsFile out;
  struct Entry {
    std::string name;
    at::ScalarType type;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) throw bad("__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) throw bad("__metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const json& e = it.value();
    const std::string where = "tensor '" + truncate_for_message(it.key()) + "': ";
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      throw bad(where + "expected an object with dtype, shape, data_offsets");
    Entry en;
    en.name = it.key();
    if (!e["dtype"].is_string() || !dtype_from_name(e["dtype"].get<std::string>(), en.type))
      throw bad(where + "unsupported dtype " + truncate_for_message(e["dtype"].dump()));
    if (!e["shape"].is_array()) throw bad(where + "shape is not an array");
    uint64_t numel = 1;
    for (const auto& s : e["shape"]) {
      if (!s.is_number_unsigned() || s.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        throw bad(where + "shape entries must be non-negative integers below 2^63");
      en.shape.push_back(s.get<int64_t>());
      if (__builtin_mul_overflow(numel, s.get<uint64_t>(), &numel))
        throw bad(where + "shape " + truncate_for_message(e["shape"].dump()) + " has more elements than 2^64");
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad(where + "data_offsets must be [begin, end]");
    en.begin = off[0].get<uint64_t>();
    en.end = off[1].get<uint64_t>();
    if (en.end < en.begin || en.end > data_size)
      throw bad(where + "data_offsets [" + std::to_string(en.begin) + ", " + std::to_string(en.end) +
                "] reach past the end of the data (" + std::to_string(data_size) + " bytes; truncated?)");
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, uint64_t(c10::elementSize(en.type)), &nbytes) || en.end - en.begin != nbytes)
      throw bad(where + "byte range does not match shape and dtype");
    entries.push_back(en);
  }
  // The tensors tile the data section exactly, as the reference implementation requires: in offset order
  // each starts where the previous one ended, the first at 0, the last at the end of the file.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].begin < covered)
      throw bad("tensors '" + entries[i - 1].name + "' and '" + entries[i].name + "' overlap");
    if (entries[i].begin > covered)
      throw bad("a gap of " + std::to_string(entries[i].begin - covered) + " bytes before tensor '" + entries[i].name +
                "' (tensors must be contiguous)");
    covered = entries[i].end;
  }
  if (covered != data_size)
    throw bad("the data section has " + std::to_string(data_size) + " bytes but the tensors cover " +
              std::to_string(covered) + " (" + std::to_string(data_size - covered) +
              " bytes after the last tensor: trailing bytes, or a header length that is too short)");
  // The tensors as views into the mapped file (a tensor whose bytes are not aligned to its element size is
  // copied out); without a mapping (mmap refused), read one by one.
  std::shared_ptr<Mapping> map = file_size > 0 ? std::make_shared<Mapping>(path, size_t(file_size)) : nullptr;
  if (map && map->ok()) {
    for (const auto& en : entries) {
      char* p = static_cast<char*>(map->base) + 8 + hlen + en.begin;
      const auto options = at::TensorOptions().dtype(en.type);  // host: the mapped file
      at::Tensor t = at::from_blob(p, en.shape, [map](void*) {}, options);
      if (reinterpret_cast<uintptr_t>(p) % c10::elementSize(en.type) != 0) t = t.clone();
      out.tensors.emplace_back(en.name, t);
    }
    return out;
  }
  for (const auto& en : entries) {
    at::Tensor t = at::empty(en.shape, at::TensorOptions().dtype(en.type));  // host: read from the file here
    f.seekg(std::streamoff(8 + hlen + en.begin));
    f.read(static_cast<char*>(t.data_ptr()), std::streamsize(en.end - en.begin));
    if (!f) throw bad("tensor '" + en.name + "': read failed (truncated?)");
    out.tensors.emplace_back(en.name, t);
  }
  return out;
}

}  // namespace gqe
