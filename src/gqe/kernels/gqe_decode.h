// GQE's decode step on the CPU (fp32, or from a bf16 KV cache; forward only): one new query position per sequence against its cached
// K/V, with the k*G routed slot heads and the shared head served from the same K/V tiles.
//
// The shared head attends to the mean over the G KV heads, and both of its products are linear in them:
//   score_t = q_s . mean_g k_{g,t}        = mean_g (q_s . k_{g,t})
//   output  = sum_t p_t mean_g v_{g,t}    = mean_g sum_t p_t v_{g,t}
// So while a key row k_{g,t} is in registers for group g's slot heads, the shared query is dotted with it
// too (summed over g before the softmax), and while v_{g,t} is there, it is added to the shared output
// with the shared head's probability p_t. No mean K/V is formed or read: decode is bound by reading the
// cache, and this reads exactly GQA's K/V bytes once.
//
// Work items are (sequence, chunk of 256 key positions) (flash-decoding: split over the keys, since at
// batch 1 there are few heads and many positions); each item keeps an online softmax over 64-position
// tiles and the chunks of a sequence are merged in order at the end. Chunks do not depend on the thread
// count, so results are the same bits for any number of threads.
// The reference twin is kernels::gqe_decode_reference (reference.h).
#pragma once
#include <ATen/ATen.h>

namespace gqe::kernels {

struct GqeDecodeOutput {
  at::Tensor slots;   // [B, 1, Hq, d_h]: head h's attention output
  at::Tensor shared;  // [B, 1, 1, d_h]: the shared head's output; undefined when q_shared was
};

// q:        [B, 1, Hq, d_h] fp32 slot-head queries (post-RoPE); head h reads KV head h / (Hq / G), Hq % G == 0
// q_shared: [B, 1, 1, d_h] fp32 shared-head query (post-RoPE), or an undefined tensor for no shared head
// k:        [B, Tk, G, d_h] fp32 or bf16 cached keys (post-RoPE); any strides with d_h contiguous (a KV-cache view)
// v:        [B, Tk, G, d_h] cached values, k's dtype, same layout rules as k
//           bf16 K/V on a CPU with AVX512-BF16: queries and probabilities rounded to bf16 (nearest even),
//           Q.K and P.V by vdpbf16ps with fp32 accumulation (bf16_avx512.h); elsewhere K/V are widened to
//           fp32 and the fp32 kernel runs.
// lengths:  [B] int64 in 1..Tk, or undefined (every sequence has Tk keys): sequence b's query sits at
//           position lengths[b] - 1 and sees keys 0 .. lengths[b] - 1 (batched decode of unequal lengths)
// Scores are scaled by 1/sqrt(d_h). Refuses inputs that require grad while grad mode is on.
GqeDecodeOutput gqe_decode(const at::Tensor& q, const at::Tensor& q_shared, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& lengths = {});

}  // namespace gqe::kernels
