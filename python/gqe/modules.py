"""GQA and GQE attention blocks as nn.Modules over the torch.ops.gqe ops.

Constructor arguments are the fields of a gqe model config's "attention" object (configs/*.json, docs in
README.md "Model config") plus the three model-level fields attention reads (hidden_size, rope_theta,
position_embedding); `from_config` takes a whole config dict. Parameter names are those of gqe's checkpoints
(docs/checkpoints.md, `layers.{i}.attn.*`), so a checkpoint's layer tensors load with load_state_dict.

Both blocks take x [B, T, d] (after the pre-norm) and return (y [B, T, d], aux_loss): the load-balancing
loss of the layer over x's tokens, unweighted (the model multiplies it by aux_loss_weight), zero for GQA, as
gqe's C++ blocks do. By default a full causal pass from position 0; `start` and `cache_update` let a caller
that keeps a KV cache (the Hugging Face model, python/gqe_hf/modeling_gqe.py) run a chunk or one token.
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import ops

_VARIANTS = ("gqe", "hard_concat", "weighted_concat")
_IMPLEMENTATIONS = ("fast", "reference")


def _linear(d_in, d_out):
    layer = nn.Linear(d_in, d_out, bias=False)
    nn.init.xavier_uniform_(layer.weight)  # gqe's init for Q/K/V/O and the shared query (attention.cpp)
    return layer


class _ReferenceKernels:
    """The pieces an attention block computes, in plain aten ops (the reference twins): any device and dtype.
    The other paths replace some of them; which path runs is _kernels_for's choice."""

    def attend(self, q, k, v, start):
        return ops.flash_attention_reference(q, k, v, start)

    def attend_slots_and_shared(self, q, q_shared, keys, values, start):
        """GQE's slot heads over the G KV heads and its shared head over their mean (keys after RoPE)."""
        return (self.attend(q, keys, values, start),
                self.attend(q_shared, keys.mean(2, keepdim=True), values.mean(2, keepdim=True), start))

    def rope(self, x, start, theta):
        return ops.rope_reference(x, start, theta)

    def routed_queries(self, x, weight, selected, experts_per_group, head_dim):
        return ops.routed_query_projection_reference(x, weight, selected, experts_per_group, head_dim)

    def shared_query(self, x, weight):
        return ops.narrow_projection_reference(x, weight)

    def route(self, logits, k, eps):
        return ops.route_reference(logits, k, eps)

    def gqe_slots(self, slots, weights, shared):
        return ops.gqe_slots_reference(slots, weights, shared)


class _CpuKernels(_ReferenceKernels):
    """gqe's fp32 CPU kernels (src/gqe/kernels/), every piece."""

    def attend(self, q, k, v, start):
        return ops.flash_attention(q, k, v, start)

    def rope(self, x, start, theta):
        return ops.rope(x, start, theta)

    def routed_queries(self, x, weight, selected, experts_per_group, head_dim):
        return ops.routed_query_projection(x, weight, selected, experts_per_group, head_dim)

    def shared_query(self, x, weight):
        return ops.narrow_projection(x, weight)

    def route(self, logits, k, eps):
        return ops.fused_routing(logits, k, eps)

    def gqe_slots(self, slots, weights, shared):
        return ops.gqe_slots(slots, weights, shared)


class _CudaPathKernels(_ReferenceKernels):
    """The gqe command's CUDA attention path (src/gqe/attention/cuda/): SDPA, GQE's slot and shared heads in
    one SDPA call, gqe's top-k kernel in routing; the projections, RoPE and slots as aten ops (dense routed
    projection: the path's choice at M / k < 4, docs/gpu.md). Any dtype; aten around SDPA, so it also runs on
    CPU tensors (the tests)."""

    def attend(self, q, k, v, start):
        return ops.sdpa_attention(q, k, v, start)

    def attend_slots_and_shared(self, q, q_shared, keys, values, start):
        return ops.sdpa_slots_and_shared(q, q_shared, keys, values, start)

    def route(self, logits, k, eps):
        return ops.route(logits, k, eps)


_REFERENCE, _CPU = _ReferenceKernels(), _CpuKernels()
_CUDA_PATH = _CudaPathKernels() if ops.has_cuda_path() else None

# None: each input picks its path. "cuda": the CUDA path whatever the device (as the gqe command's
# GQE_ATTENTION_PATH=cuda; the tests run it on CPU tensors).
attention_path_override = None


def _kernels_for(implementation, x):
    """gqe's attention_path_for: the reference ops when asked for; else the CPU kernels for an fp32 CPU
    input, the CUDA path for a CUDA input when the package was built with it, the reference ops otherwise."""
    if implementation == "reference":
        return _REFERENCE
    if attention_path_override == "cuda" or x.is_cuda:
        if _CUDA_PATH is None and attention_path_override == "cuda":
            raise RuntimeError("gqe: attention_path_override is 'cuda' but this build of the package has no CUDA "
                               "path (build it with GQE_CUDA: docs/python.md)")
        return _CUDA_PATH or _REFERENCE
    return _CPU if x.device.type == "cpu" and x.dtype == torch.float32 else _REFERENCE


class _AttentionBase(nn.Module):
    def __init__(self, hidden_size, num_attention_heads, num_key_value_heads, head_dim, rope_theta,
                 position_embedding, implementation):
        super().__init__()
        if head_dim is None:
            if hidden_size % num_attention_heads:
                raise ValueError("attention.head_dim: hidden_size is not divisible by num_attention_heads; give head_dim")
            head_dim = hidden_size // num_attention_heads
        if min(hidden_size, num_attention_heads, num_key_value_heads, head_dim) <= 0:
            raise ValueError("attention: sizes must be positive")
        if num_attention_heads % num_key_value_heads:
            raise ValueError("attention.num_attention_heads must be divisible by num_key_value_heads")
        if position_embedding not in ("rope", "none"):
            raise ValueError(f"position_embedding: unknown value {position_embedding!r} (rope, none)")
        if position_embedding == "rope" and head_dim % 2:
            raise ValueError("attention.head_dim must be even with RoPE")
        if implementation not in _IMPLEMENTATIONS:
            raise ValueError(f"attention.implementation: unknown value {implementation!r} (fast, reference)")
        self.hidden_size = hidden_size
        self.num_heads = num_attention_heads
        self.num_kv_heads = num_key_value_heads
        self.head_dim = head_dim
        self.rope_theta = float(rope_theta)
        self.use_rope = position_embedding == "rope"
        self.implementation = implementation
        self.q_proj = _linear(hidden_size, self._q_rows())
        self.k_proj = _linear(hidden_size, num_key_value_heads * head_dim)
        self.v_proj = _linear(hidden_size, num_key_value_heads * head_dim)

    def _q_rows(self):
        return self.num_heads * self.head_dim

    def _kernels(self, x):
        return _kernels_for(self.implementation, x)

    def _keys_values(self, x, kernels, start, cache_update):
        """The keys (after RoPE) and values the queries attend to, [B, Tk, G, d_h]: x's own, or with a cache
        all start + T of them."""
        B, T, _ = x.shape
        k = self.k_proj(x).view(B, T, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x).view(B, T, self.num_kv_heads, self.head_dim)
        if self.use_rope:
            k = kernels.rope(k, start, self.rope_theta)
        if cache_update is not None:
            k, v = cache_update(k, v)
        if k.shape[1] != start + T:
            raise ValueError(f"attention: {k.shape[1]} keys for {T} tokens at position {start}; a full pass "
                             "starts at 0, and a cache must hold the start earlier tokens' keys")
        return k, v

    @classmethod
    def from_config(cls, config: dict):
        """A block from a gqe model config (the dict of a config.json: hidden_size, rope_theta,
        position_embedding and the "attention" object)."""
        a = dict(config["attention"])
        kind = a.pop("kind", "gqe")
        expected = "gqe" if cls is GQEAttention else "gqa"
        if kind != expected:
            raise ValueError(f"attention.kind is {kind!r}; {cls.__name__} needs {expected!r}")
        if cls is GQAAttention:
            for gqe_only in ("top_k", "variant", "aux_loss_weight", "router_denominator_eps"):
                a.pop(gqe_only, None)
        return cls(hidden_size=config["hidden_size"], rope_theta=config.get("rope_theta", 10000.0),
                   position_embedding=config.get("position_embedding", "rope"), **a)


class GQAAttention(_AttentionBase):
    """Grouped-query attention: N query heads over G KV heads (head h uses KV head h // (N/G))."""

    def __init__(self, hidden_size, num_attention_heads, num_key_value_heads, head_dim=None,
                 implementation="fast", rope_theta=10000.0, position_embedding="rope"):
        super().__init__(hidden_size, num_attention_heads, num_key_value_heads, head_dim, rope_theta,
                         position_embedding, implementation)
        self.o_proj = _linear(self.num_heads * self.head_dim, hidden_size)

    def forward(self, x, start: int = 0, cache_update=None):
        """x [B, T, d]: the tokens at positions start .. start+T-1. Without cache_update, a full causal pass
        (start 0). With it, cache_update(keys, values) takes x's keys (after RoPE) and values [B, T, G, d_h]
        and returns them after the start earlier ones, [B, start+T, G, d_h] (a KV cache's append)."""
        B, T, _ = x.shape
        kernels = self._kernels(x)
        k, v = self._keys_values(x, kernels, start, cache_update)
        q = self.q_proj(x).view(B, T, self.num_heads, self.head_dim)
        if self.use_rope:
            q = kernels.rope(q, start, self.rope_theta)
        o = kernels.attend(q, k, v, start)
        return self.o_proj(o.reshape(B, T, self.num_heads * self.head_dim)), x.new_zeros(())


class GQEAttention(_AttentionBase):
    """Grouped Query Experts: in each of the G groups a router picks top_k of the M = N/G query-head experts
    per token; the slots W_O reads depend on `variant` (docs/method.md)."""

    def __init__(self, hidden_size, num_attention_heads, num_key_value_heads, head_dim=None, top_k=1,
                 variant="gqe", aux_loss_weight=0.01, router_denominator_eps=1e-9, implementation="fast",
                 rope_theta=10000.0, position_embedding="rope"):
        super().__init__(hidden_size, num_attention_heads, num_key_value_heads, head_dim, rope_theta,
                         position_embedding, implementation)
        self.experts_per_group = self.num_heads // self.num_kv_heads
        if not 1 <= top_k <= self.experts_per_group:
            raise ValueError(f"attention.top_k must be in 1..{self.experts_per_group} (experts per group)")
        if variant not in _VARIANTS:
            raise ValueError(f"attention.variant: unknown value {variant!r} ({', '.join(_VARIANTS)})")
        self.top_k = top_k
        self.variant = variant
        self.aux_loss_weight = float(aux_loss_weight)  # for the model's loss; the block returns aux_loss unweighted
        self.router_denominator_eps = float(router_denominator_eps)
        self.router = nn.Linear(hidden_size, self.num_heads, bias=False)
        nn.init.zeros_(self.router.weight)  # routing starts uniform, as in gqe
        if variant == "gqe":
            self.shared_q_proj = _linear(hidden_size, self.head_dim)
        self.o_proj = _linear(self.num_slots * self.head_dim, hidden_size)

    @property
    def num_slots(self):
        hard = self.top_k * self.num_kv_heads
        return hard + 2 if self.variant == "gqe" else hard

    def forward(self, x, start: int = 0, cache_update=None):
        """As GQAAttention.forward; the load-balancing loss is over x's tokens."""
        B, T, _ = x.shape
        G, M, k, d_h = self.num_kv_heads, self.experts_per_group, self.top_k, self.head_dim
        kernels = self._kernels(x)
        keys, values = self._keys_values(x, kernels, start, cache_update)

        # 1. Route (in at least fp32, as gqe does, so that low-precision logits do not flip near-ties).
        logit_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        logits = F.linear(x.to(logit_dtype), self.router.weight.to(logit_dtype)).view(B, T, G, M)
        _, selected, selected_probs, weights, aux_loss = kernels.route(logits, k, self.router_denominator_eps)

        # 2. Project only the selected experts and attend: slot head g*k + r is the token's r-th choice in
        #    group g, so this is GQA with k query heads per KV head.
        q = kernels.routed_queries(x, self.q_proj.weight, selected, M, d_h)
        if self.use_rope:
            q = kernels.rope(q, start, self.rope_theta)
        if self.variant == "gqe":
            # The shared head attends against the mean of the G KV heads (keys averaged after RoPE).
            qs = kernels.shared_query(x, self.shared_q_proj.weight)
            if self.use_rope:
                qs = kernels.rope(qs, start, self.rope_theta)
            o, shared = kernels.attend_slots_and_shared(q, qs, keys, values, start)
        else:
            o = kernels.attend(q, keys, values, start)

        # 3. The slots W_O reads.
        if self.variant == "weighted_concat":
            slots = (selected_probs.unsqueeze(-1).to(o.dtype) * o.view(B, T, G, k, d_h)).reshape(B, T, G * k * d_h)
        elif self.variant == "hard_concat":
            slots = o.reshape(B, T, G * k * d_h)
        else:
            slots = kernels.gqe_slots(o, weights.to(o.dtype), shared)
        return self.o_proj(slots), aux_loss


def attention_from_config(config: dict):
    """The attention block a gqe model config names: GQEAttention for attention.kind "gqe" (the default),
    GQAAttention for "gqa"."""
    kind = config["attention"].get("kind", "gqe")
    if kind not in ("gqe", "gqa"):
        raise ValueError(f"attention.kind: unknown value {kind!r} (gqe, gqa)")
    return (GQEAttention if kind == "gqe" else GQAAttention).from_config(config)
