// GQE routing's top-k on the GPU: one thread per (token, group) row selects the k largest of its M
// probabilities, descending, the lower index first among equals: the same selection loop and tie rule
// as the CPU kernel (kernels/route_top_k.h), so both devices route identically. Reference twin:
// kernels::top_k_reference.
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels::cuda {

// probs: [..., M] float, double, half or bf16 on a CUDA device -> [..., k] int64 on the same device.
at::Tensor route_top_k(const at::Tensor& probs, int64_t k);

}  // namespace gqe::kernels::cuda
