// Every CPU kernel's entry refuses a tensor that lives elsewhere (they read data_ptr() on the host), and
// says which kernel, which argument and which device. Choosing kernels by device is attention_path.h's job.
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels {

inline void check_on_cpu(const char* kernel, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu(), kernel, ": a CPU kernel, but ", name, " is on ", t.device());
}

}  // namespace gqe::kernels
