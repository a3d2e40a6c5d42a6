// GQE routing's top-k on the CPU: the k largest of each row of M probabilities, descending, the lower
// index first among equal values (what the first k of a stable descending sort give; at::topk makes no
// promise about ties), by selection in one pass over the rows instead of sorting each one (M is small).
// Reference twin: kernels::top_k_reference (reference.h). CUDA twin: kernels::cuda::route_top_k.
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels {

// probs: [..., M] float or double on the CPU -> [..., k] int64 expert indices.
at::Tensor route_top_k(const at::Tensor& probs, int64_t k);

}  // namespace gqe::kernels
