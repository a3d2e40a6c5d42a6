// bf16 autocast on CUDA for a scope: the forward pass runs its matrix products in bf16 (fp32 accumulation)
// and the backward in the dtypes autocast chose; weights and optimizer state stay fp32. The one place that
// knows the two spellings of libtorch's autocast API (1.13's set_enabled / set_autocast_gpu_dtype, removed
// in favour of per-device calls since 2.4).
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace gqe {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define GQE_AUTOCAST_PER_DEVICE_API 1
#else
#define GQE_AUTOCAST_PER_DEVICE_API 0
#endif

inline void set_cuda_autocast(bool enabled, at::ScalarType dtype = at::kBFloat16) {
#if GQE_AUTOCAST_PER_DEVICE_API
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
#else
  at::autocast::set_autocast_gpu_dtype(dtype);
  at::autocast::set_enabled(enabled);
#endif
}

inline bool cuda_autocast_enabled() {
#if GQE_AUTOCAST_PER_DEVICE_API
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

inline at::ScalarType cuda_autocast_dtype() {
#if GQE_AUTOCAST_PER_DEVICE_API
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

// CPU autocast (bf16) for tests: what CUDA autocast does to dtypes, observable on a machine without a GPU.
inline void set_cpu_autocast(bool enabled, at::ScalarType dtype = at::kBFloat16) {
#if GQE_AUTOCAST_PER_DEVICE_API
  at::autocast::set_autocast_dtype(at::kCPU, dtype);
  at::autocast::set_autocast_enabled(at::kCPU, enabled);
#else
  at::autocast::set_autocast_cpu_dtype(dtype);
  at::autocast::set_cpu_enabled(enabled);
#endif
  if (!enabled) at::autocast::clear_cache();
}

class CudaAutocastScope {
 public:
  explicit CudaAutocastScope(bool on) : on_(on) {
    if (on_) set_cuda_autocast(true);
  }
  ~CudaAutocastScope() {
    if (!on_) return;
    set_cuda_autocast(false);
    at::autocast::clear_cache();
  }
  CudaAutocastScope(const CudaAutocastScope&) = delete;
  CudaAutocastScope& operator=(const CudaAutocastScope&) = delete;

 private:
  bool on_;
};

}  // namespace gqe
