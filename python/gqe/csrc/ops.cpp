// gqe's kernels as PyTorch dispatcher ops (namespace torch.ops.gqe), for the Python package python/gqe/.
//
// Every op here calls the kernels of src/gqe/kernels/ that the CLI's attention blocks compose
// (attention_path.cpp), linked from gqe_nn: no second copy of any kernel.
//
// Two kinds of op:
//   * the fast CPU kernels (fp32), registered for the CPU key only. Autograd is wired in Python
//     (torch.library.register_autograd, python/gqe/ops.py) through an explicit backward op, and their shapes
//     come from Python fake implementations, so that torch.compile traces them as opaque nodes.
//   * the reference twins (kernels/reference.h), plain libtorch ops on any device and dtype, registered as
//     CompositeImplicitAutograd: autograd, meta and torch.compile see straight through them to aten ops.
//
// The fast kernels' own autograd functions (kernels::rope, routed_query_projection, fused_routing, ...) are
// not used for gradients here: each fast op runs under NoGradGuard, so its output carries no C++ graph
// that would bypass the dispatcher's autograd.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "gqe/attention/attention.h"
#include "gqe/attention/router.h"
#include "gqe/core/config.h"
#include "gqe/kernels/flash_attention.h"
#include "gqe/kernels/fused_routing.h"
#include "gqe/kernels/gqe_slots.h"
#include "gqe/kernels/reference.h"
#include "gqe/kernels/rope.h"
#include "gqe/kernels/routed_projection.h"

namespace {

using at::Tensor;

void check_fast_inputs(const char* op, std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    TORCH_CHECK(t->device().is_cpu(), "gqe::", op, ": the fast kernel runs on CPU tensors (got ", t->device(),
                "); use the reference op or implementation='reference'");
    TORCH_CHECK(t->scalar_type() == at::kFloat, "gqe::", op, ": the fast kernel is fp32 only (got ",
                t->scalar_type(), "); use the reference op for other dtypes");
  }
}

std::tuple<Tensor, Tensor> flash_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                   int64_t q_start) {
  check_fast_inputs("flash_attention_forward", {&q, &k, &v});
  at::NoGradGuard no_grad;
  auto r = gqe::kernels::flash_attention_forward(q.contiguous(), k.contiguous(), v.contiguous(), q_start);
  return {r.out, r.lse};
}

std::tuple<Tensor, Tensor, Tensor> flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                            const Tensor& out, const Tensor& lse,
                                                            const Tensor& dout, int64_t q_start) {
  check_fast_inputs("flash_attention_backward", {&q, &k, &v, &out, &lse, &dout});
  at::NoGradGuard no_grad;
  return gqe::kernels::flash_attention_backward(q.contiguous(), k.contiguous(), v.contiguous(), out.contiguous(),
                                                lse.contiguous(), dout.contiguous(), q_start);
}

Tensor rope(const Tensor& x, int64_t start, double theta) {
  check_fast_inputs("rope", {&x});
  at::NoGradGuard no_grad;
  return gqe::kernels::rope(x.contiguous(), start, theta);
}

Tensor routed_query_projection(const Tensor& x, const Tensor& weight, const Tensor& selected,
                               int64_t experts_per_group, int64_t head_dim) {
  check_fast_inputs("routed_query_projection", {&x, &weight});
  at::NoGradGuard no_grad;
  return gqe::kernels::routed_query_projection(x.contiguous(), weight.contiguous(), selected.contiguous(),
                                               experts_per_group, head_dim);
}

// The gradients of a kernel whose backward lives only inside its C++ autograd function (fused routing): run it
// again with gradients on fresh leaves and differentiate. This recomputes the forward, cheap for routing (a
// softmax over [B, T, G, M]); the projections, where it would cost a GEMM, call their backward directly.
std::vector<Tensor> grads_by_recompute(const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& fn,
                                       const std::vector<Tensor>& inputs, const std::vector<Tensor>& grad_outputs) {
  at::AutoGradMode grad_on(true);
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) leaves.push_back(t.detach().contiguous().requires_grad_(true));
  std::vector<Tensor> outs = fn(leaves), used_outs, used_grads;
  for (size_t i = 0; i < outs.size(); ++i) {
    if (grad_outputs[i].defined() && outs[i].requires_grad()) {
      used_outs.push_back(outs[i]);
      used_grads.push_back(grad_outputs[i].contiguous());
    }
  }
  if (used_outs.empty()) {
    std::vector<Tensor> zeros;
    for (const Tensor& t : inputs) zeros.push_back(at::zeros_like(t));
    return zeros;
  }
  auto grads = torch::autograd::grad(used_outs, leaves, used_grads, /*retain_graph=*/false,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  for (size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = at::zeros_like(inputs[i]);
  return grads;
}

std::tuple<Tensor, Tensor> routed_query_projection_backward(const Tensor& x, const Tensor& weight,
                                                            const Tensor& selected, int64_t experts_per_group,
                                                            int64_t head_dim, const Tensor& grad_out) {
  check_fast_inputs("routed_query_projection_backward", {&x, &weight, &grad_out});
  at::NoGradGuard no_grad;
  return gqe::kernels::routed_query_projection_backward(x, weight, selected, experts_per_group, head_dim, grad_out);
}

Tensor narrow_projection(const Tensor& x, const Tensor& weight) {
  check_fast_inputs("narrow_projection", {&x, &weight});
  at::NoGradGuard no_grad;
  return gqe::kernels::narrow_projection(x.contiguous(), weight.contiguous());
}

std::tuple<Tensor, Tensor> narrow_projection_backward(const Tensor& x, const Tensor& weight, const Tensor& grad_out) {
  check_fast_inputs("narrow_projection_backward", {&x, &weight, &grad_out});
  at::NoGradGuard no_grad;
  return gqe::kernels::narrow_projection_backward(x, weight, grad_out);
}

Tensor gqe_slots(const Tensor& slots, const Tensor& weights, const Tensor& shared) {
  check_fast_inputs("gqe_slots", {&slots, &weights, &shared});
  at::NoGradGuard no_grad;
  return gqe::kernels::gqe_slots(slots.contiguous(), weights.contiguous(), shared.contiguous());
}

// (probs, selected, selected_probs, weights, aux_loss) as in kernels::FusedRouting.
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> fused_routing(const Tensor& logits, int64_t k, double eps) {
  check_fast_inputs("fused_routing", {&logits});
  at::NoGradGuard no_grad;
  auto r = gqe::kernels::fused_routing(logits.contiguous(), k, eps);
  return {r.probs, r.selected, r.selected_probs, r.weights, r.aux_loss};
}

// d(logits) from the gradients of the differentiable outputs (selected_probs, weights, aux_loss); any of them
// may be undefined (None) when that output took no part in the loss.
Tensor fused_routing_backward(const Tensor& logits, int64_t k, double eps, const std::optional<Tensor>& grad_selected_probs,
                              const std::optional<Tensor>& grad_weights, const std::optional<Tensor>& grad_aux_loss) {
  check_fast_inputs("fused_routing_backward", {&logits});
  auto g = grads_by_recompute(
      [&](const std::vector<Tensor>& in) {
        auto r = gqe::kernels::fused_routing(in[0], k, eps);
        return std::vector<Tensor>{r.selected_probs, r.weights, r.aux_loss};
      },
      {logits},
      {grad_selected_probs.value_or(Tensor()), grad_weights.value_or(Tensor()), grad_aux_loss.value_or(Tensor())});
  return g[0];
}

// The CLI's own attention block (gqe::make_attention over a model config's JSON text) with the given weights
// by parameter name, on x [B, T, d]: returns its output y and load-balancing loss, and the gradients of
// sum(y * grad_y) + grad_aux * aux_loss with respect to x and every weight (in the order of `names`).
// For tests: the Python modules must agree with the block the `gqe` command trains.
std::tuple<Tensor, Tensor, Tensor, std::vector<Tensor>> cli_attention_block(
    const std::string& model_config_json, const std::vector<std::string>& names, const std::vector<Tensor>& weights,
    const Tensor& x, const Tensor& grad_y, double grad_aux) {
  TORCH_CHECK(names.size() == weights.size(), "gqe::cli_attention_block: ", names.size(), " names for ",
              weights.size(), " weights");
  const gqe::ModelConfig cfg = gqe::parse_model_config(model_config_json, "gqe::cli_attention_block");
  auto block = gqe::make_attention(cfg);
  auto params = block->named_parameters();
  TORCH_CHECK(params.size() == names.size(), "gqe::cli_attention_block: the block has ", params.size(),
              " parameters, ", names.size(), " given");
  at::AutoGradMode grad_on(true);
  {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < names.size(); ++i) {
      TORCH_CHECK(params.contains(names[i]), "gqe::cli_attention_block: the block has no parameter ", names[i]);
      params[names[i]].copy_(weights[i]);
    }
  }
  block->to(x.scalar_type());
  Tensor xin = x.detach().clone().requires_grad_(true);
  gqe::AttentionResult r = block->forward(xin, nullptr);
  std::vector<Tensor> wrt{xin};
  for (const auto& n : names) wrt.push_back(params[n]);
  Tensor loss = (r.y * grad_y).sum() + r.aux_loss * grad_aux;
  auto grads = torch::autograd::grad({loss}, wrt, {}, false, false, /*allow_unused=*/true);
  std::vector<Tensor> grad_weights;
  for (size_t i = 1; i < grads.size(); ++i)
    grad_weights.push_back(grads[i].defined() ? grads[i] : at::zeros_like(wrt[i]));
  return {r.y.detach(), r.aux_loss.detach(), grads[0], grad_weights};
}

}  // namespace

TORCH_LIBRARY(gqe, m) {
  // Causal GQA-native attention: q [B, Tq, Hq, d_h] at positions q_start.., k/v [B, Tk, G, d_h], Hq % G == 0.
  m.def("flash_attention_forward(Tensor q, Tensor k, Tensor v, int q_start) -> (Tensor out, Tensor lse)");
  m.def("flash_attention_backward(Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, Tensor grad_out, "
        "int q_start) -> (Tensor grad_q, Tensor grad_k, Tensor grad_v)");
  m.def("flash_attention_reference(Tensor q, Tensor k, Tensor v, int q_start) -> Tensor");
  // Rotary embedding (rotate-half) of x [B, T, H, d_h] at positions start..start+T-1.
  m.def("rope(Tensor x, int start, float theta) -> Tensor");
  m.def("rope_reference(Tensor x, int start, float theta) -> Tensor");
  // GQE's routed query projection: x [B, T, d], weight [N*d_h, d], selected [B, T, G, k] -> [B, T, G*k, d_h].
  m.def("routed_query_projection(Tensor x, Tensor weight, Tensor selected, int experts_per_group, int head_dim) "
        "-> Tensor");
  m.def("routed_query_projection_backward(Tensor x, Tensor weight, Tensor selected, int experts_per_group, "
        "int head_dim, Tensor grad_out) -> (Tensor grad_x, Tensor grad_weight)");
  m.def("routed_query_projection_reference(Tensor x, Tensor weight, Tensor selected, int experts_per_group, "
        "int head_dim) -> Tensor");
  // The shared head's query: x [B, T, d] times a narrow weight [d_h, d] transposed -> [B, T, 1, d_h].
  m.def("narrow_projection(Tensor x, Tensor weight) -> Tensor");
  m.def("narrow_projection_backward(Tensor x, Tensor weight, Tensor grad_out) -> (Tensor grad_x, Tensor grad_weight)");
  m.def("narrow_projection_reference(Tensor x, Tensor weight) -> Tensor");
  // W_O's input for variant gqe: slots [B, T, G*k, d_h], weights [B, T, G, k], shared [B, T, 1, d_h].
  m.def("gqe_slots(Tensor slots, Tensor weights, Tensor shared) -> Tensor");
  m.def("gqe_slots_reference(Tensor slots, Tensor weights, Tensor shared) -> Tensor");
  // GQE's routing of logits [B, T, G, M] in one pass.
  m.def("fused_routing(Tensor logits, int k, float eps) -> (Tensor probs, Tensor selected, Tensor selected_probs, "
        "Tensor weights, Tensor aux_loss)");
  m.def("fused_routing_backward(Tensor logits, int k, float eps, Tensor? grad_selected_probs, "
        "Tensor? grad_weights, Tensor? grad_aux_loss) -> Tensor");
  // GQE's routing the plain way (route_tokens + weigh_routing, attention/router.h): any device and dtype.
  m.def("route_reference(Tensor logits, int k, float eps) -> (Tensor probs, Tensor selected, "
        "Tensor selected_probs, Tensor weights, Tensor aux_loss)");
  // For tests: the attention block the `gqe` command trains, on given weights (see cli_attention_block).
  m.def("cli_attention_block(str model_config_json, str[] names, Tensor[] weights, Tensor x, Tensor grad_y, "
        "float grad_aux) -> (Tensor y, Tensor aux_loss, Tensor grad_x, Tensor[] grad_weights)");
}

TORCH_LIBRARY_IMPL(gqe, CPU, m) {
  m.impl("flash_attention_forward", &flash_attention_forward);
  m.impl("flash_attention_backward", &flash_attention_backward);
  m.impl("rope", &rope);
  m.impl("routed_query_projection", &routed_query_projection);
  m.impl("routed_query_projection_backward", &routed_query_projection_backward);
  m.impl("narrow_projection", &narrow_projection);
  m.impl("narrow_projection_backward", &narrow_projection_backward);
  m.impl("gqe_slots", &gqe_slots);
  m.impl("fused_routing", &fused_routing);
  m.impl("fused_routing_backward", &fused_routing_backward);
  m.impl("cli_attention_block", &cli_attention_block);
}

TORCH_LIBRARY_IMPL(gqe, CompositeImplicitAutograd, m) {
  m.impl("flash_attention_reference", &gqe::kernels::flash_attention_reference);
  m.impl("rope_reference", &gqe::kernels::rope_reference);
  m.impl("routed_query_projection_reference", &gqe::kernels::routed_query_projection_reference);
  m.impl("narrow_projection_reference", &gqe::kernels::narrow_projection_reference);
  m.impl("gqe_slots_reference", &gqe::kernels::gqe_slots_reference);
  m.impl("route_reference", [](const Tensor& logits, int64_t k, double eps) {
    gqe::Routing r = gqe::weigh_routing(gqe::route_tokens(logits, k), eps);
    return std::make_tuple(r.probs, r.selected, r.selected_probs, r.weights, r.aux_loss);
  });
}
