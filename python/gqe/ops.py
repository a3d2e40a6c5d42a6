"""The torch.ops.gqe ops with their fake (meta) implementations, autograd, and plain Python entry points.

The fast ops (CPU, fp32) run gqe's kernels; each gets a fake implementation, so torch.compile traces it as
one opaque node without a graph break, and a backward through torch.library.register_autograd. The
reference ops are CompositeImplicitAutograd in C++ (plain aten ops): they need neither.
"""
import torch

from . import _library  # noqa: F401  (registers torch.ops.gqe)

_ops = torch.ops.gqe


# --- fake (meta) implementations: shapes and dtypes only --------------------------------------------------

@torch.library.register_fake("gqe::flash_attention_forward")
def _(q, k, v, q_start):
    B, Tq, Hq, _ = q.shape
    return q.new_empty(q.shape), q.new_empty((B, Tq, Hq))


@torch.library.register_fake("gqe::flash_attention_backward")
def _(q, k, v, out, lse, grad_out, q_start):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


@torch.library.register_fake("gqe::rope")
def _(x, start, theta):
    return x.new_empty(x.shape)


@torch.library.register_fake("gqe::routed_query_projection")
def _(x, weight, selected, experts_per_group, head_dim):
    B, T, G, k = selected.shape
    return x.new_empty((B, T, G * k, head_dim))


@torch.library.register_fake("gqe::routed_query_projection_backward")
def _(x, weight, selected, experts_per_group, head_dim, grad_out):
    return x.new_empty(x.shape), weight.new_empty(weight.shape)


@torch.library.register_fake("gqe::narrow_projection")
def _(x, weight):
    B, T, _ = x.shape
    return x.new_empty((B, T, 1, weight.shape[0]))


@torch.library.register_fake("gqe::narrow_projection_backward")
def _(x, weight, grad_out):
    return x.new_empty(x.shape), weight.new_empty(weight.shape)


@torch.library.register_fake("gqe::gqe_slots")
def _(slots, weights, shared):
    B, T, S, d_h = slots.shape
    return slots.new_empty((B, T, (S + 2) * d_h))


@torch.library.register_fake("gqe::fused_routing")
def _(logits, k, eps):
    B, T, G, _ = logits.shape
    picked = (B, T, G, k)
    return (logits.new_empty(logits.shape), logits.new_empty(picked, dtype=torch.int64), logits.new_empty(picked),
            logits.new_empty(picked), logits.new_empty(()))


@torch.library.register_fake("gqe::fused_routing_backward")
def _(logits, k, eps, grad_selected_probs, grad_weights, grad_aux_loss):
    return logits.new_empty(logits.shape)


# --- autograd ---------------------------------------------------------------------------------------------

def _flash_setup(ctx, inputs, output):
    q, k, v, q_start = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse)
    ctx.q_start = q_start
    # lse is a statistic the backward reuses, not a differentiable result.
    ctx.mark_non_differentiable(lse)


def _flash_backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse = ctx.saved_tensors
    dq, dk, dv = _ops.flash_attention_backward(q, k, v, out, lse, grad_out, ctx.q_start)
    return dq, dk, dv, None


torch.library.register_autograd("gqe::flash_attention_forward", _flash_backward, setup_context=_flash_setup)


def _negate_second_half(x):
    half = x.shape[-1] // 2
    return torch.cat([x[..., :half], -x[..., half:]], dim=-1)


def _rope_setup(ctx, inputs, output):
    _, ctx.start, ctx.theta = inputs


def _rope_backward(ctx, grad):
    # RoPE rotates each pair (i, i + d_h/2) by an angle; its gradient is the rotation by the opposite angle,
    # which is the same kernel applied with the second half negated before and after.
    return _negate_second_half(_ops.rope(_negate_second_half(grad), ctx.start, ctx.theta)), None, None


torch.library.register_autograd("gqe::rope", _rope_backward, setup_context=_rope_setup)


def _routed_setup(ctx, inputs, output):
    x, weight, selected, ctx.experts_per_group, ctx.head_dim = inputs
    ctx.save_for_backward(x, weight, selected)


def _routed_backward(ctx, grad):
    x, weight, selected = ctx.saved_tensors
    dx, dw = _ops.routed_query_projection_backward(x, weight, selected, ctx.experts_per_group, ctx.head_dim, grad)
    return dx, dw, None, None, None


torch.library.register_autograd("gqe::routed_query_projection", _routed_backward, setup_context=_routed_setup)


def _narrow_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _narrow_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    return _ops.narrow_projection_backward(x, weight, grad)


torch.library.register_autograd("gqe::narrow_projection", _narrow_backward, setup_context=_narrow_setup)


def _slots_setup(ctx, inputs, output):
    slots, weights, _ = inputs
    ctx.save_for_backward(slots, weights)


def _slots_backward(ctx, grad):
    # out = (slots, sum_s w[s] slot[s], shared) along the last dimension.
    slots, weights = ctx.saved_tensors
    B, T, S, d_h = slots.shape
    g_slots = grad[..., : S * d_h].reshape(B, T, S, d_h)
    g_sum = grad[..., S * d_h:(S + 1) * d_h].unsqueeze(2)
    g_shared = grad[..., (S + 1) * d_h:].reshape(B, T, 1, d_h)
    d_slots = g_slots + weights.reshape(B, T, S, 1) * g_sum
    d_weights = (slots * g_sum).sum(-1).reshape(weights.shape)
    return d_slots, d_weights, g_shared


torch.library.register_autograd("gqe::gqe_slots", _slots_backward, setup_context=_slots_setup)


def _routing_setup(ctx, inputs, output):
    logits, ctx.k, ctx.eps = inputs
    probs, selected = output[0], output[1]
    ctx.save_for_backward(logits)
    # The kernel's probabilities are analytics (the differentiable ones are selected_probs and the loss).
    ctx.mark_non_differentiable(probs, selected)


def _routing_backward(ctx, grad_probs, grad_selected, grad_selected_probs, grad_weights, grad_aux_loss):
    (logits,) = ctx.saved_tensors
    return _ops.fused_routing_backward(logits, ctx.k, ctx.eps, grad_selected_probs, grad_weights,
                                       grad_aux_loss), None, None


torch.library.register_autograd("gqe::fused_routing", _routing_backward, setup_context=_routing_setup)


# --- the CUDA path's ops (a package built with GQE_CUDA, csrc/cuda_path_ops.cpp) -------------------------------
# sdpa_attention, sdpa_slots_and_shared and route are CompositeImplicitAutograd (aten ops around SDPA: any
# device, autograd and tracing from the ops inside); route_top_k is a kernel and needs a fake.

def has_cuda_path() -> bool:
    """Whether this build of the package carries the CUDA path's ops (built with GQE_CUDA)."""
    return hasattr(_ops, "route_top_k")


if has_cuda_path():
    @torch.library.register_fake("gqe::route_top_k")
    def _(probs, k):
        return probs.new_empty((*probs.shape[:-1], k), dtype=torch.int64)


# --- entry points -----------------------------------------------------------------------------------------

def flash_attention(q, k, v, q_start: int = 0):
    """Causal GQA-native attention with gqe's CPU kernel (fp32): q [B, Tq, Hq, d_h] at positions q_start..,
    k and v [B, Tk, G, d_h] with Hq % G == 0 (head h uses KV head h // (Hq // G)) -> [B, Tq, Hq, d_h]."""
    return _ops.flash_attention_forward(q, k, v, q_start)[0]


def flash_attention_reference(q, k, v, q_start: int = 0):
    """The same as flash_attention in plain aten ops: any device and dtype."""
    return _ops.flash_attention_reference(q, k, v, q_start)


rope = _ops.rope
rope_reference = _ops.rope_reference
routed_query_projection = _ops.routed_query_projection
routed_query_projection_reference = _ops.routed_query_projection_reference
narrow_projection = _ops.narrow_projection
narrow_projection_reference = _ops.narrow_projection_reference
gqe_slots = _ops.gqe_slots
gqe_slots_reference = _ops.gqe_slots_reference
fused_routing = _ops.fused_routing
route_reference = _ops.route_reference
if has_cuda_path():
    sdpa_attention = _ops.sdpa_attention
    sdpa_slots_and_shared = _ops.sdpa_slots_and_shared
    route_top_k = _ops.route_top_k
    route = _ops.route
