#include "gqe/attention/attention_path.h"

#include <c10/core/GradMode.h>

#include <cstdlib>
#include <initializer_list>
#include <string>

#include "gqe/attention/attention_dtype.h"
#include "gqe/core/error.h"
#include "gqe/kernels/flash_attention.h"
#include "gqe/kernels/fused_routing.h"
#include "gqe/kernels/gemv.h"
#include "gqe/kernels/gqe_decode.h"
#include "gqe/kernels/gqe_slots.h"
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

Routing AttentionPath::route(const at::Tensor& logits, int64_t k, double eps) const {
  return weigh_routing(route_tokens(logits, k, top_k()), eps);
}

at::Tensor AttentionPath::gqe_slots(const at::Tensor& slots, const at::Tensor& weights, const at::Tensor& shared) const {
  return kernels::gqe_slots_reference(slots, weights, shared);
}

at::Tensor AttentionPath::rope_ragged(const at::Tensor& x, const std::vector<int64_t>& positions, double theta) const {
  std::vector<at::Tensor> rows;
  for (size_t b = 0; b < positions.size(); ++b) rows.push_back(rope(x.narrow(0, int64_t(b), 1), positions[b], theta));
  return at::cat(rows, 0);
}

std::pair<at::Tensor, at::Tensor> AttentionPath::decode_ragged(const at::Tensor& q, const at::Tensor& q_shared,
                                                               const at::Tensor& keys, const at::Tensor& values,
                                                               const at::Tensor& lengths, LayerKVCache*) const {
  kernels::GqeDecodeOutput o = kernels::gqe_decode_reference(q, q_shared, keys, values, lengths);
  return {o.slots, o.shared};
}

std::pair<at::Tensor, at::Tensor> AttentionPath::attend_slots_and_shared(const at::Tensor& q, const at::Tensor& q_shared,
                                                                         const at::Tensor& keys,
                                                                         const at::Tensor& values, int64_t q_start,
                                                                         LayerKVCache* cache) const {
  at::Tensor o = attend(q, keys, values, q_start);
  if (!q_shared.defined()) return {o, at::Tensor()};
  auto [k_mean, v_mean] = mean_kv(keys, values, cache);
  return {o, attend(q_shared, k_mean, v_mean, q_start)};
}

namespace {

bool needs_grad(std::initializer_list<const at::Tensor*> ts) {
  if (!c10::GradMode::is_enabled()) return false;
  for (const at::Tensor* t : ts)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

// One new position per sequence against all cached keys (a decode step) with no gradient asked for: the
// CPU path's fused decode kernel (kernels/gqe_decode.h) serves it, for GQA and GQE alike, so that the two
// are compared through the same kernel.
bool is_decode_step(const at::Tensor& q, const at::Tensor& keys, int64_t q_start,
                    std::initializer_list<const at::Tensor*> inputs) {
  return q.size(1) == 1 && q_start + 1 == keys.size(1) && !needs_grad(inputs);
}

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

// K/V as the CPU kernels take them for inference: rounded to bf16 when the process asks for bf16 attention
// (attention_dtype.h) and no gradient is wanted (what a bf16 KV cache holds; a bf16 cache's K/V already
// are); otherwise as they are.
at::Tensor inference_kv(const at::Tensor& x, bool grad) {
  if (grad || x.scalar_type() != at::kFloat || cpu_attention_dtype() != at::kBFloat16) return x;
  return x.to(at::kBFloat16);
}

class CpuPath final : public AttentionPath {
 public:
  const char* name() const override { return "cpu"; }
  at::Tensor rope(const at::Tensor& x, int64_t start, double theta) const override {
    return kernels::rope(x, start, theta);
  }
  // Decode steps (one position, the last key, no gradient): the fused decode kernel, which splits the keys
  // over the threads (flash-decoding). Everything else: flash attention.
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_start) const override {
    const bool grad = needs_grad({&q, &k, &v});
    if (is_decode_step(q, k, q_start, {&q, &k, &v}))
      return kernels::gqe_decode(q, at::Tensor(), inference_kv(k, grad), inference_kv(v, grad)).slots;
    return kernels::flash_attention(q, inference_kv(k, grad), inference_kv(v, grad), q_start);
  }
  at::Tensor routed_queries(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& selected, int64_t M,
                            int64_t dh) const override {
    // One token (a batch-1 decode step): the selected experts' rows, read in one pass (kernels/gemv.h).
    if (x.numel() == x.size(-1) && kernels::linear_rows_applies(x, weight)) {
      // Slot g*k + r reads expert (g, selected[g, r]): W_Q's rows from ((g*M + m) * d_h). Formed in one loop,
      // not a chain of small tensor ops: this runs once per layer and decode step.
      const at::Tensor sel = selected.reshape({-1}).contiguous();
      at::Tensor offsets = at::empty_like(sel);
      const int64_t k = selected.size(-1), *sp = sel.data_ptr<int64_t>();
      int64_t* op = offsets.data_ptr<int64_t>();
      for (int64_t i = 0; i < sel.numel(); ++i) op[i] = ((i / k) * M + sp[i]) * dh;
      return kernels::linear_row_blocks(x, weight, offsets, dh).view({x.size(0), x.size(1), -1, dh});
    }
    return kernels::routed_query_projection(x, weight, selected, M, dh);
  }
  at::Tensor shared_query(const at::Tensor& x, const at::Tensor& weight) const override {
    if (kernels::linear_rows_applies(x, weight)) return kernels::linear_rows(x, weight).unsqueeze(-2);
    return kernels::narrow_projection(x, weight);
  }
  TopK top_k() const override { return kernels::route_top_k; }
  Routing route(const at::Tensor& logits, int64_t k, double eps) const override {
    if (logits.scalar_type() != at::kFloat) return AttentionPath::route(logits, k, eps);  // fp32 kernel
    kernels::FusedRouting f = kernels::fused_routing(logits, k, eps);
    return {f.probs, f.selected, f.selected_probs, f.weights, f.aux_loss};
  }
  at::Tensor gqe_slots(const at::Tensor& slots, const at::Tensor& weights, const at::Tensor& shared) const override {
    if (slots.scalar_type() != at::kFloat || weights.scalar_type() != at::kFloat || shared.scalar_type() != at::kFloat)
      return AttentionPath::gqe_slots(slots, weights, shared);  // fp32 kernel
    return kernels::gqe_slots(slots, weights, shared);
  }
  // Decode (one position, the last key, no gradient): the fused kernel, which reads each K/V tile once for
  // the slot heads and the shared head and needs no mean K/V. Everything else: attend() twice.
  std::pair<at::Tensor, at::Tensor> attend_slots_and_shared(const at::Tensor& q, const at::Tensor& q_shared,
                                                            const at::Tensor& keys, const at::Tensor& values,
                                                            int64_t q_start, LayerKVCache* cache) const override {
    if (!is_decode_step(q, keys, q_start, {&q, &q_shared, &keys, &values}))
      return AttentionPath::attend_slots_and_shared(q, q_shared, keys, values, q_start, cache);
    kernels::GqeDecodeOutput o = kernels::gqe_decode(q, q_shared, inference_kv(keys, false), inference_kv(values, false));
    return {o.slots, o.shared};
  }
  std::pair<at::Tensor, at::Tensor> decode_ragged(const at::Tensor& q, const at::Tensor& q_shared,
                                                  const at::Tensor& keys, const at::Tensor& values,
                                                  const at::Tensor& lengths, LayerKVCache* cache) const override {
    if (needs_grad({&q, &q_shared, &keys, &values}))
      return AttentionPath::decode_ragged(q, q_shared, keys, values, lengths, cache);
    kernels::GqeDecodeOutput o =
        kernels::gqe_decode(q, q_shared, inference_kv(keys, false), inference_kv(values, false), lengths);
    return {o.slots, o.shared};
  }
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

namespace {

// GQE_ATTENTION_PATH, read once: the path every non-reference block takes, or null for the usual choice.
const AttentionPath* path_from_environment() {
  static const AttentionPath* forced = [] {
    const char* v = std::getenv("GQE_ATTENTION_PATH");
    if (!v || !*v) return static_cast<const AttentionPath*>(nullptr);
    const std::string name = v;
    if (name == "reference") return &reference_attention_path();
    if (name == "cpu") return &cpu_attention_path();
#ifdef GQE_WITH_CUDA
    if (name == "cuda") return &cuda_attention_path();
#endif
    throw Error("GQE_ATTENTION_PATH='" + name + "': expected reference, cpu" +
#ifdef GQE_WITH_CUDA
                std::string(" or cuda")
#else
                std::string(" (this build has no CUDA path)")
#endif
    );
  }();
  return forced;
}

// The override in force: AttentionPathOverride's, else the environment's.
const AttentionPath*& forced_attention_path_slot() {
  static const AttentionPath* slot = path_from_environment();
  return slot;
}

const AttentionPath* forced_attention_path() { return forced_attention_path_slot(); }

}  // namespace

AttentionPathOverride::AttentionPathOverride(const AttentionPath& path) : previous_(forced_attention_path_slot()) {
  forced_attention_path_slot() = &path;
}

AttentionPathOverride::~AttentionPathOverride() { forced_attention_path_slot() = previous_; }

const AttentionPath& attention_path_for(const AttentionConfig& a, const at::Tensor& x) {
  if (a.implementation == AttentionImplementation::reference) return reference_attention_path();
  if (const AttentionPath* forced = forced_attention_path()) return *forced;
  if (x.device().is_cpu() && x.scalar_type() == at::kFloat) return cpu_attention_path();
#ifdef GQE_WITH_CUDA
  if (x.device().is_cuda() &&
      (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf))
    return cuda_attention_path();
#endif
  return reference_attention_path();
}

}  // namespace gqe
