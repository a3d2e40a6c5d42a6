// RoPE for the CUDA path from cos/sin tables kept per (device, dtype, d_h, theta) and grown by doubling to the
// longest position asked for: a call is a narrow (or, for a ragged batch, one gather) of the tables and the
// rotation's elementwise ops, where the reference recomputes the angles (pow, outer, cos, sin) every call.
// Bit-identical to the reference twin, kernels::rope_reference: the same angles in float64, cast to x's dtype.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace gqe::kernels::cuda {

// x [B, T, H, d_h] at positions start .. start+T-1 -> same shape and dtype.
at::Tensor rope_cached(const at::Tensor& x, int64_t start, double theta);

// x [B, 1, H, d_h], sequence b at position positions[b] -> same shape and dtype.
at::Tensor rope_cached_at(const at::Tensor& x, const std::vector<int64_t>& positions, double theta);

}  // namespace gqe::kernels::cuda
