// Causal attention on the GPU through libtorch's scaled_dot_product_attention, whose flash, cuDNN and
// memory-efficient backends never form the n x n score matrix. GQA-native: K/V stay at G heads wherever no
// explicit mask is needed: prefill (enable_gqa), decode (the query heads of a group as rows of one head),
// chunked prefill without gradients (two mask-free calls merged by their log-sum-exps). Reference twin:
// kernels::flash_attention_reference (kernels::gqe_decode_reference for the ragged decode).
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace gqe::kernels::cuda {

// q: [B, Tq, Hq, d_h] queries at positions q_start .. q_start+Tq-1
// k: [B, Tk, G, d_h]  keys at positions 0 .. Tk-1 (post-RoPE); Hq % G == 0, q_start + Tq <= Tk
// v: [B, Tk, G, d_h]
// returns [B, Tq, Hq, d_h] (q's dtype); differentiable. Works on any device libtorch's SDPA supports
// (the tests run it on the CPU too); the CUDA path calls it with CUDA tensors.
at::Tensor sdpa_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start);

// One decode step of sequences of unequal lengths: q [B, 1, Hq, d_h], sequence b at position lengths[b] - 1,
// seeing its keys 0 .. lengths[b] - 1 of k, v [B, Tk, G, d_h]; lengths [B] int64 on any device.
// Returns [B, 1, Hq, d_h]: one call for the whole batch (a key mask), K/V never expanded.
at::Tensor sdpa_decode_ragged(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& lengths);

// Whether sdpa_attention computes a chunked prefill (q_start > 0, Tq > 1) as two mask-free calls merged by
// their log-sum-exps: no gradient wanted, and on CUDA bf16 / fp16 with d_h <= 256, a multiple of 8 (the flash
// kernel's operands); on the CPU always (its twin of that kernel), so that the tests check the merge.
bool chunk_by_lse_merge(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Two attention outputs over disjoint key sets, o1, o2 [B, H, T, d_h], with their row log-sum-exps lse1, lse2
// [B, H, T] -> the attention output over the union of the keys [B, H, T, d_h] (o1's dtype).
at::Tensor merge_by_lse(const at::Tensor& o1, const at::Tensor& lse1, const at::Tensor& o2, const at::Tensor& lse2);

// The backend libtorch's SDPA dispatcher picks for the call sdpa_attention(q, k, v, q_start) makes with these
// operands ("flash_attention", "cudnn_attention", "efficient_attention", "math", ...), for benchmarks to print.
std::string sdpa_backend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start);

// Allows only one SDPA backend from now on, process-wide ("flash", "cudnn", "efficient", "math"), or all of
// them again ("auto"), so that a benchmark runs GQA and GQE on the same kernel.
void pin_sdpa_backend(const std::string& name);

}  // namespace gqe::kernels::cuda
