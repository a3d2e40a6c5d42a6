// GQE's routed query projection on the GPU: only the k*G selected experts' queries are computed. The
// (token, slot) pairs are sorted by expert (a stable sort of the expert ids), the x rows gathered in that
// order, and one grouped GEMM multiplies each expert's contiguous run of rows by its W_Q[g,m]; the results
// are put back in slot order. Backward comes from autograd over the same ops: the grouped GEMM's own
// backward (dX_sorted = dQ_sorted W^T, dW_e = X_e^T dQ_e per expert), then a scatter-add of dX_sorted
// back onto the tokens. Reference twin: kernels::routed_query_projection_reference (dense, then select).
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels::cuda {

enum class GroupedGemm {
  automatic,   // libtorch's grouped matmul where it takes these operands, else per_expert
  grouped_mm,  // at::_grouped_mm: one call for all experts (bf16 on Hopper, any float dtype on the CPU;
               // d and d_h rows of a multiple of 16 bytes)
  per_expert,  // one matmul per non-empty expert (needs the expert sizes on the host: one sync)
               // grouped_mm runs without a host sync: the experts' row offsets stay on the device
};

// x:        [B, T, d]
// weight:   [N*d_h, d], expert (g, m) owns rows [(g*M + m)*d_h, (g*M + m + 1)*d_h)
// selected: [B, T, G, k] int64 expert index m in 0..M-1
// returns   [B, T, G*k, d_h]: slot head g*k + r of token i is W_Q[g, selected[i,g,r]] x_i. Differentiable.
// Under CUDA autocast the GEMM runs in the autocast dtype (fp32 accumulation), like a linear layer would.
at::Tensor grouped_query_projection(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected,
                                    int64_t experts_per_group, int64_t head_dim,
                                    GroupedGemm gemm = GroupedGemm::automatic);

}  // namespace gqe::kernels::cuda
