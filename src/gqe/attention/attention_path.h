// How an attention block computes its pieces: one interface, three implementations, one place that
// chooses between them (attention_path_for). The blocks in attention.cpp read as the method (route,
// project, attend, combine) and never ask which kernels run.
//
//   path        runs on                                      kernels
//   "cpu"       fp32 CPU tensors (K/V may be bf16: a bf16    src/gqe/kernels/ (flash attention, sparse
//               cache or --dtype bf16, attention_dtype.h)    routed projection, one-pass RoPE, top-k,
//                                                            GQE's fused decode step)
//   "cuda"      CUDA tensors (builds with GQE_CUDA only)      src/gqe/kernels/cuda/ (libtorch SDPA with
//                                                            flash/cuDNN/mem-efficient backends, grouped
//                                                            GEMM routed projection, fused top-k)
//   "reference" any other device or dtype, or               src/gqe/kernels/reference.h (plain libtorch
//               attention.implementation = "reference"      ops: every score, all N query heads)
//
// All three give the same results up to rounding; tests compare them on random inputs.
#pragma once
#include <ATen/ATen.h>

#include <utility>
#include <vector>

#include "gqe/attention/kv_cache.h"
#include "gqe/attention/router.h"
#include "gqe/core/config.h"

namespace gqe {

class AttentionPath {
 public:
  virtual ~AttentionPath() = default;
  virtual const char* name() const = 0;

  // Rotary embedding of x [B, T, H, d_h] at positions start..start+T-1 -> same shape.
  virtual at::Tensor rope(const at::Tensor& x, int64_t start, double theta) const = 0;

  // Rotary embedding against a ragged cache: x [B, T, H, d_h], sequence b at positions positions[b].. -> same
  // shape. By default rope() per sequence; the CUDA path gathers its tables once for a decode step (T = 1).
  virtual at::Tensor rope_ragged(const at::Tensor& x, const std::vector<int64_t>& positions, double theta) const;

  // Causal attention, GQA-native: q [B, Tq, Hq, d_h] at positions q_start.., k and v [B, Tk, G, d_h] with
  // Hq % G == 0 (head h uses KV head h / (Hq / G)) -> [B, Tq, Hq, d_h].
  virtual at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            int64_t q_start) const = 0;

  // GQE's routed query projection: x [B, T, d], weight [N*d_h, d], selected [B, T, G, k] ->
  // [B, T, G*k, d_h] (slot head g*k + r = token's r-th choice in group g).
  virtual at::Tensor routed_queries(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected,
                                    int64_t experts_per_group, int64_t head_dim) const = 0;

  // The shared head's query: x [B, T, d], weight [d_h, d] -> [B, T, 1, d_h].
  virtual at::Tensor shared_query(const at::Tensor& x, const at::Tensor& weight) const = 0;

  // The routing top-k (route_tokens' tie rule).
  virtual TopK top_k() const = 0;

  // GQE's whole routing of router logits [B, T, G, M]: softmax, top-k, selected probabilities, renormalised
  // weights (denominator floor eps) and the load-balancing loss. By default the plain composition
  // (weigh_routing(route_tokens(logits, k, top_k()), eps)); the CPU path computes it in one pass.
  virtual Routing route(const at::Tensor& logits, int64_t k, double eps) const;

  // GQE's attention for one call: the slot heads q [B, T, G*k, d_h] against keys/values [B, Tk, G, d_h] at
  // positions q_start.., and, when q_shared [B, T, 1, d_h] is defined, the shared head against the mean over
  // the G KV heads. Returns (slot outputs [B, T, G*k, d_h], shared output [B, T, 1, d_h] or undefined).
  // By default attend() twice, the second against mean_kv(); the CPU path decodes a single position with
  // no gradient through one fused kernel (kernels/gqe_decode.h) that serves both from the same K/V tiles
  // and reads no mean K/V (its attend() decodes GQA through the same kernel).
  virtual std::pair<at::Tensor, at::Tensor> attend_slots_and_shared(const at::Tensor& q, const at::Tensor& q_shared,
                                                                    const at::Tensor& keys, const at::Tensor& values,
                                                                    int64_t q_start, LayerKVCache* cache) const;

  // W_O's input for variant gqe: slot outputs [B, T, G*k, d_h], their renormalised weights [B, T, G, k] and
  // the shared head's output [B, T, 1, d_h] -> [B, T, (G*k + 2) * d_h] (the slots, their weighted sum, the
  // shared head). By default kernels::gqe_slots_reference (a product, a sum and a concatenation); the CPU
  // path writes it into one buffer (kernels/gqe_slots.h).
  virtual at::Tensor gqe_slots(const at::Tensor& slots, const at::Tensor& weights, const at::Tensor& shared) const;

  // A decode step of sequences of unequal lengths (a ragged KV cache): sequence b's query (slot heads q
  // [B, 1, Hq, d_h], shared head q_shared [B, 1, 1, d_h] or undefined) sits at position lengths[b] - 1 and
  // sees its keys 0 .. lengths[b] - 1 of keys/values [B, Tk, G, d_h]; lengths: [B] int64 on the CPU; cache:
  // the layer's cache holding keys/values, or null.
  // Returns (slot outputs [B, 1, Hq, d_h], shared output [B, 1, 1, d_h] or undefined). By default
  // kernels::gqe_decode_reference (plain libtorch ops, any device); the CPU path: the fused decode kernel;
  // the CUDA path: one masked SDPA call for the batch, and one for the shared head against the cache's mean.
  virtual std::pair<at::Tensor, at::Tensor> decode_ragged(const at::Tensor& q, const at::Tensor& q_shared,
                                                          const at::Tensor& keys, const at::Tensor& values,
                                                          const at::Tensor& lengths, LayerKVCache* cache) const;

  // Mean over the G KV heads of keys and values [B, L, G, d_h] -> [B, L, 1, d_h] each, for the shared head.
  // The fast paths take it from a decoding cache, which keeps it up to date (no re-read of all K/V per step).
  virtual std::pair<at::Tensor, at::Tensor> mean_kv(const at::Tensor& keys, const at::Tensor& values,
                                                    LayerKVCache* cache) const;
};

// The path for a block with config `a` whose input is x: the reference when a.implementation asks for it;
// otherwise the fast path of x's device when it has one for x's dtype (CPU: fp32; CUDA: fp32, bf16, fp16);
// otherwise the reference. The environment variable GQE_ATTENTION_PATH=cuda|cpu|reference overrides the
// choice for every block whose config does not ask for the reference (read once per process): the CUDA
// build's tests and the GPU check's dry run put the CUDA path's code under every command on CPU tensors.
const AttentionPath& attention_path_for(const AttentionConfig& a, const at::Tensor& x);

// For tests and tools: while one lives, every block whose config does not ask for the reference takes `path`
// (as GQE_ATTENTION_PATH does for a whole process). Not thread-safe against forward calls running meanwhile.
class AttentionPathOverride {
 public:
  explicit AttentionPathOverride(const AttentionPath& path);
  ~AttentionPathOverride();
  AttentionPathOverride(const AttentionPathOverride&) = delete;
  AttentionPathOverride& operator=(const AttentionPathOverride&) = delete;

 private:
  const AttentionPath* previous_;
};

// The paths themselves, for tests and benchmarks that compare them.
const AttentionPath& reference_attention_path();
const AttentionPath& cpu_attention_path();
#ifdef GQE_WITH_CUDA
const AttentionPath& cuda_attention_path();  // src/gqe/attention/cuda/attention_path_cuda.cpp
#endif

}  // namespace gqe
