// load_safetensors (io/safetensors.cpp) on arbitrary bytes. A file that loads must describe itself:
// every tensor's bytes lie inside the file (ASan checks the reads), and saving the result and loading it
// again gives the same names, dtypes, shapes and bytes.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_util.h"
#include "gqe/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = gqe::fuzz::write_input("model.safetensors", data, size);
  try {
    const gqe::SafetensorsFile f = gqe::load_safetensors(path);
    const std::string again = gqe::fuzz::scratch_dir() + "/again.safetensors";
    gqe::save_safetensors(again, f.tensors, f.metadata);
    const gqe::SafetensorsFile g = gqe::load_safetensors(again);
    bool same = g.tensors.size() == f.tensors.size() && g.metadata == f.metadata;
    for (size_t i = 0; same && i < f.tensors.size(); ++i) {
      const at::Tensor& a = f.tensors[i].second;
      const at::Tensor& b = g.tensors[i].second;
      same = f.tensors[i].first == g.tensors[i].first && a.scalar_type() == b.scalar_type() &&
             a.sizes() == b.sizes() && a.nbytes() == b.nbytes() &&
             (a.nbytes() == 0 || std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0);
    }
    if (!same) {
      std::fprintf(stderr, "safetensors_fuzz: saving what was loaded and loading it again changed it\n");
      std::abort();
    }
  } catch (const gqe::Error&) {
  }
  return 0;
}
