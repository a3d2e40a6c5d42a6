// Rotary position embedding in one pass over x (fp32), forward and backward: the fast twin of
// kernels::rope_reference (reference.h), which builds it from six libtorch elementwise ops and
// their temporaries. Same angle table (computed in double, then cast), same rotate-half layout.
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels {

// x: [B, T, H, d_h] fp32 (d_h even) at positions start..start+T-1 -> rotated, same shape. Differentiable
// (custom autograd function: the gradient is the rotation by the opposite angle).
at::Tensor rope(const at::Tensor& x, int64_t start, double theta);

}  // namespace gqe::kernels
