// GQE's attention in as few SDPA calls as the shape allows: the k*G slot heads over the G KV heads and the
// shared head over the mean K/V. For k = 1 the slot heads and the shared head are multi-head attention with
// G + 1 query heads over G + 1 KV heads, the mean K/V appended as one more KV head (RoPE is linear, so the mean
// of the rotated keys is the rotated mean key): ONE call, the same kernel GQA runs. For k > 1 the shared query
// is repeated k times against the mean head (k - 1 wasted query heads of k*(G + 1)) to keep one GQA call, or
// the shared head gets a call of its own, whichever the layout rule below picks. The KV cache stays GQA's:
// the mean head is appended per call, never stored as a cached head.
// Reference twin: kernels::flash_attention_reference twice (slot heads, then the shared head).
#pragma once
#include <ATen/ATen.h>

#include <utility>

namespace gqe::kernels::cuda {

enum class SharedHeadLayout {
  automatic,  // one_call when it wastes at most a quarter of the query heads and no cache would be copied
              // for a single position; else two_calls
  one_call,   // slots and shared head in one call over the G KV heads plus the mean head
  two_calls,  // the slot heads over the G KV heads, then the shared head over the mean K/V
};

// The layout `automatic` picks for k choices per group over G groups and Tq new positions.
SharedHeadLayout choose_shared_head_layout(int64_t G, int64_t k, int64_t Tq);

// q:        [B, Tq, G*k, d_h] slot heads at positions q_start .. (slot head g*k + r over KV head g)
// q_shared: [B, Tq, 1, d_h] the shared head's query
// keys, values:     [B, Tk, G, d_h] (post-RoPE)
// k_mean, v_mean:   [B, Tk, 1, d_h] their mean over the G heads
// returns (slot outputs [B, Tq, G*k, d_h], shared output [B, Tq, 1, d_h]); differentiable; any device.
std::pair<at::Tensor, at::Tensor> gqe_attention(const at::Tensor& q, const at::Tensor& q_shared, const at::Tensor& keys,
                                                const at::Tensor& values, const at::Tensor& k_mean,
                                                const at::Tensor& v_mean, int64_t q_start,
                                                SharedHeadLayout layout = SharedHeadLayout::automatic);

}  // namespace gqe::kernels::cuda
