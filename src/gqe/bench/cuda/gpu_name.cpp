// The GPU's name for `gqe bench --device cuda` (built with GQE_CUDA only).
#include <ATen/cuda/CUDAContext.h>

#include "gqe/bench/prefill_bench.h"

namespace gqe::bench {

std::string gpu_name(int device_index) { return at::cuda::getDeviceProperties(device_index)->name; }

}  // namespace gqe::bench
