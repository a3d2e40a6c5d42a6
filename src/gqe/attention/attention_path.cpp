#include "gqe/attention/attention_path.h"

#include "gqe/kernels/flash_attention.h"
#include "gqe/kernels/reference.h"
#include "gqe/kernels/rope.h"
#include "gqe/kernels/route_top_k.h"
#include "gqe/kernels/routed_projection.h"

namespace gqe {

std::pair<at::Tensor, at::Tensor> AttentionPath::mean_kv(const at::Tensor& keys, const at::Tensor& values,
                                                         LayerKVCache* cache) const {
  if (cache) return cache->mean_kv();
  return {keys.mean(2, true), values.mean(2, true)};
}

namespace {

class ReferencePath final : public AttentionPath {
 public:
  const char* name() const override { return "reference"; }
  at::Tensor rope(const at::Tensor& x, int64_t start, double theta) const override {
    return kernels::rope_reference(x, start, theta);
  }
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start) const override {
    return kernels::flash_attention_reference(q, k, v, q_start);
  }
  at::Tensor routed_queries(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected, int64_t M,
                            int64_t dh) const override {
    return kernels::routed_query_projection_reference(x, weight, selected, M, dh);
  }
  at::Tensor shared_query(const at::Tensor& x, const at::Tensor& weight) const override {
    return kernels::narrow_projection_reference(x, weight);
  }
  TopK top_k() const override { return kernels::top_k_reference; }
  // Recomputed from the keys even when decoding: the reference does not trust the cache's running mean.
  std::pair<at::Tensor, at::Tensor> mean_kv(const at::Tensor& keys, const at::Tensor& values,
                                            LayerKVCache*) const override {
    return {keys.mean(2, true), values.mean(2, true)};
  }
};

class CpuPath final : public AttentionPath {
 public:
  const char* name() const override { return "cpu"; }
  at::Tensor rope(const at::Tensor& x, int64_t start, double theta) const override {
    return kernels::rope(x, start, theta);
  }
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start) const override {
    return kernels::flash_attention(q, k, v, q_start);
  }
  at::Tensor routed_queries(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected, int64_t M,
                            int64_t dh) const override {
    return kernels::routed_query_projection(x, weight, selected, M, dh);
  }
  at::Tensor shared_query(const at::Tensor& x, const at::Tensor& weight) const override {
    return kernels::narrow_projection(x, weight);
  }
  TopK top_k() const override { return kernels::route_top_k; }
};

}  // namespace

const AttentionPath& reference_attention_path() {
  static const ReferencePath path;
  return path;
}

const AttentionPath& cpu_attention_path() {
  static const CpuPath path;
  return path;
}

const AttentionPath& attention_path_for(const AttentionConfig& a, const at::Tensor& x) {
  if (a.implementation == AttentionImplementation::reference) return reference_attention_path();
  if (x.device().is_cpu() && x.scalar_type() == at::kFloat) return cpu_attention_path();
#ifdef GQE_WITH_CUDA
  if (x.device().is_cuda() &&
      (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf))
    return cuda_attention_path();
#endif
  return reference_attention_path();
}

}  // namespace gqe
