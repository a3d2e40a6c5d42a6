// The gqe command's CUDA attention path (src/gqe/attention/cuda/attention_path_cuda.cpp) as dispatcher ops, in a
// package built with GQE_CUDA (docs/python.md): libtorch's SDPA for attention, GQE's slot heads and shared head
// in one SDPA call where the shape allows (kernels/cuda/gqe_attention.h), and gqe's top-k kernel in routing.
//
// Everything but the top-k is plain libtorch around SDPA, so those ops are CompositeImplicitAutograd: autograd
// comes from the aten ops inside, torch.compile traces through them, and they run on any device, which is how
// the tests check them without a GPU (on CPU tensors, against the reference twins). The top-k is an op of its
// own with a CUDA kernel, the reference top-k elsewhere, and a fake implementation (ops.py), so a compiled
// graph calls the kernel as one node. Without GQE_CUDA this file registers nothing.
#ifdef GQE_WITH_CUDA

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <tuple>

#include "gqe/attention/router.h"
#include "gqe/kernels/cuda/gqe_attention.h"
#include "gqe/kernels/cuda/route_top_k.h"
#include "gqe/kernels/cuda/sdpa_attention.h"
#include "gqe/kernels/reference.h"

namespace {

using at::Tensor;

// route_tokens' top-k through the dispatcher, so that the device picks the kernel and tracing sees the op.
Tensor top_k_op(const Tensor& probs, int64_t k) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("gqe::route_top_k", "")
                             .typed<Tensor(const Tensor&, int64_t)>();
  return op.call(probs, k);
}

std::tuple<Tensor, Tensor> sdpa_slots_and_shared(const Tensor& q, const Tensor& q_shared, const Tensor& keys,
                                                 const Tensor& values, int64_t q_start) {
  // The shared head attends against the mean of the G KV heads (as AttentionPath::mean_kv without a cache).
  auto [slots, shared] = gqe::kernels::cuda::gqe_attention(q, q_shared, keys, values, keys.mean(2, true),
                                                          values.mean(2, true), q_start);
  return {slots, shared};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(gqe, m) {
  // Causal attention through libtorch's SDPA: q [B, Tq, Hq, d_h] at positions q_start.., k/v [B, Tk, G, d_h].
  m.def("sdpa_attention(Tensor q, Tensor k, Tensor v, int q_start) -> Tensor");
  // GQE's slot heads q [B, Tq, G*k, d_h] over keys/values [B, Tk, G, d_h] and its shared head q_shared
  // [B, Tq, 1, d_h] over their mean, in one SDPA call where the layout rule allows -> (slots, shared).
  m.def("sdpa_slots_and_shared(Tensor q, Tensor q_shared, Tensor keys, Tensor values, int q_start) "
        "-> (Tensor slots, Tensor shared)");
  // The k largest of each row of probs [..., M] -> [..., k] int64, descending, lower index first among equals.
  m.def("route_top_k(Tensor probs, int k) -> Tensor");
  // GQE's routing (route_reference's composition) with route_top_k for the selection.
  m.def("route(Tensor logits, int k, float eps) -> (Tensor probs, Tensor selected, Tensor selected_probs, "
        "Tensor weights, Tensor aux_loss)");
}

TORCH_LIBRARY_IMPL(gqe, CUDA, m) {
  m.impl("route_top_k", [](const Tensor& probs, int64_t k) { return gqe::kernels::cuda::route_top_k(probs, k); });
}

TORCH_LIBRARY_IMPL(gqe, CPU, m) {
  m.impl("route_top_k", [](const Tensor& probs, int64_t k) { return gqe::kernels::top_k_reference(probs, k); });
}

TORCH_LIBRARY_IMPL(gqe, CompositeImplicitAutograd, m) {
  m.impl("sdpa_attention", &gqe::kernels::cuda::sdpa_attention);
  m.impl("sdpa_slots_and_shared", &sdpa_slots_and_shared);
  m.impl("route", [](const Tensor& logits, int64_t k, double eps) {
    gqe::Routing r = gqe::weigh_routing(gqe::route_tokens(logits, k, top_k_op), eps);
    return std::make_tuple(r.probs, r.selected, r.selected_probs, r.weights, r.aux_loss);
  });
}

#endif  // GQE_WITH_CUDA
