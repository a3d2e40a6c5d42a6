// The CUDA attention path (built with GQE_CUDA only): libtorch's SDPA for attention, GQE's slot heads and
// shared head in one call where the shape allows (kernels/cuda/gqe_attention.h), the routed projection dense
// or grouped by token count, the fused top-k, RoPE from cached tables. Nothing here waits for the GPU in a
// prefill or a training step: no host round trip, no size read back. Every piece is plain libtorch around
// the kernels, so the whole path also runs on CPU tensors (the tests, GQE_ATTENTION_PATH=cuda).
#include "gqe/attention/attention_path.h"
#include "gqe/kernels/cuda/gqe_attention.h"
#include "gqe/kernels/cuda/grouped_query_projection.h"
#include "gqe/kernels/cuda/rope_table.h"
#include "gqe/kernels/cuda/route_top_k.h"
#include "gqe/kernels/cuda/sdpa_attention.h"
#include "gqe/kernels/reference.h"

namespace gqe {
namespace {

// The routed query projection computes all M experts' queries of each group in one dense GEMM and gathers the
// k selected (two kernels, no sort), or sorts the tokens by expert for one grouped GEMM that skips the
// (M - k)/M unselected experts' FLOPs (about seven kernels). The cost model (docs/gpu.md, "Cost model") finds
// the dense GEMM cheaper at every length for the paper's M / k = 2: the grouped path is memory-bound on its
// gather of G*k copies of each x row. Only where it skips most of the work (M / k >= 4) and the sort's fixed
// cost is amortised (above 4096 tokens) is it chosen; that region is not modelled: to be measured on a GPU.
bool dense_routed_projection(int64_t tokens, int64_t M, int64_t k) { return M < 4 * k || tokens <= 4096; }

at::Tensor routing_top_k(const at::Tensor& probs, int64_t k) {
  return probs.is_cuda() ? kernels::cuda::route_top_k(probs, k) : kernels::top_k_reference(probs, k);
}

class CudaPath final : public AttentionPath {
 public:
  const char* name() const override { return "cuda"; }
  at::Tensor rope(const at::Tensor& x, int64_t start, double theta) const override {
    return kernels::cuda::rope_cached(x, start, theta);
  }
  at::Tensor rope_ragged(const at::Tensor& x, const std::vector<int64_t>& positions, double theta) const override {
    if (x.size(1) != 1) return AttentionPath::rope_ragged(x, positions, theta);  // several positions: per sequence
    return kernels::cuda::rope_cached_at(x, positions, theta);
  }
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start) const override {
    return kernels::cuda::sdpa_attention(q, k, v, q_start);
  }
  at::Tensor routed_queries(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected, int64_t M,
                            int64_t dh) const override {
    if (dense_routed_projection(x.size(0) * x.size(1), M, selected.size(3)))
      return kernels::routed_query_projection_reference(x, weight, selected, M, dh);
    return kernels::cuda::grouped_query_projection(x, weight, selected, M, dh);
  }
  at::Tensor shared_query(const at::Tensor& x, const at::Tensor& weight) const override {
    return kernels::narrow_projection_reference(x, weight);
  }
  TopK top_k() const override { return routing_top_k; }
  std::pair<at::Tensor, at::Tensor> attend_slots_and_shared(const at::Tensor& q, const at::Tensor& q_shared,
                                                            const at::Tensor& keys, const at::Tensor& values,
                                                            int64_t q_start, LayerKVCache* cache) const override {
    if (!q_shared.defined()) return {attend(q, keys, values, q_start), at::Tensor()};
    auto [k_mean, v_mean] = mean_kv(keys, values, cache);
    return kernels::cuda::gqe_attention(q, q_shared, keys, values, k_mean, v_mean, q_start);
  }
  std::pair<at::Tensor, at::Tensor> decode_ragged(const at::Tensor& q, const at::Tensor& q_shared,
                                                  const at::Tensor& keys, const at::Tensor& values,
                                                  const at::Tensor& lengths, LayerKVCache* cache) const override {
    at::Tensor len = lengths.to(keys.device());
    at::Tensor slots = kernels::cuda::sdpa_decode_ragged(q, keys, values, len);
    if (!q_shared.defined()) return {slots, at::Tensor()};
    auto [k_mean, v_mean] = mean_kv(keys, values, cache);
    return {slots, kernels::cuda::sdpa_decode_ragged(q_shared, k_mean, v_mean, len)};
  }
};

}  // namespace

const AttentionPath& cuda_attention_path() {
  static const CudaPath path;
  return path;
}

}  // namespace gqe
