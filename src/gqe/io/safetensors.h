// safetensors (Hugging Face): 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the raw little-endian tensor bytes. Offsets are relative to the end of the header.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace gqe {

struct SafetensorsFile {
  std::vector<std::pair<std::string, at::Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;
  const at::Tensor* find(const std::string& name) const;
};

// Writes atomically: a temporary file beside `path`, fsync, rename. Tensors are written contiguous,
// in the order given, sorted by nothing. Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The reference implementation's cap on the JSON header; a larger length is damage, not a header.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Reads and validates as strictly as the reference implementation: the header length exact (JSON object,
// then only whitespace padding), dtypes, shapes vs byte ranges, and the tensors tiling the data section
// exactly (no gap, no overlap, no trailing bytes). Throws gqe::FormatError naming the file and the problem.
// The file is mapped into memory (private: writing to a tensor never changes the file) and the tensors are
// views into it, so loading costs no copy; the mapping lives as long as any of its tensors. The file must
// not be truncated or rewritten in place while they live (gqe writes every file by atomic rename).
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace gqe
