// Rotary position embedding, rotate-half form (GPT-NeoX / Llama layout).
#pragma once
#include <ATen/ATen.h>

namespace gqe {

// x: [B, T, H, d_h] at positions start..start+T-1; returns the rotated tensor (same shape and dtype).
// Pairs (i, i + d_h/2) rotate by angle pos * theta^(-2i/d_h).
at::Tensor apply_rope(const at::Tensor& x, int64_t start, double theta);

}  // namespace gqe
