// The CUDA attention path (built with GQE_CUDA only): libtorch's SDPA for attention, the grouped-GEMM
// routed projection, the fused top-k; RoPE and the shared query are plain libtorch ops, which run as
// single fused-enough CUDA kernels and follow autocast like any linear layer.
#include "gqe/attention/attention_path.h"
#include "gqe/kernels/cuda/grouped_query_projection.h"
#include "gqe/kernels/cuda/route_top_k.h"
#include "gqe/kernels/cuda/sdpa_attention.h"
#include "gqe/kernels/reference.h"

namespace gqe {
namespace {

class CudaPath final : public AttentionPath {
 public:
  const char* name() const override { return "cuda"; }
  at::Tensor rope(const at::Tensor& x, int64_t start, double theta) const override {
    return kernels::rope_reference(x, start, theta);
  }
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start) const override {
    return kernels::cuda::sdpa_attention(q, k, v, q_start);
  }
  at::Tensor routed_queries(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected, int64_t M,
                            int64_t dh) const override {
    return kernels::cuda::grouped_query_projection(x, weight, selected, M, dh);
  }
  at::Tensor shared_query(const at::Tensor& x, const at::Tensor& weight) const override {
    return kernels::narrow_projection_reference(x, weight);
  }
  TopK top_k() const override { return kernels::cuda::route_top_k; }
};

}  // namespace

const AttentionPath& cuda_attention_path() {
  static const CudaPath path;
  return path;
}

}  // namespace gqe
