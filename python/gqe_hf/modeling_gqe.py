# A plain PyTorch implementation of gqe's decoder language model (GQA baseline and Grouped Query Experts),
# for Hugging Face transformers; written by `gqe export --format hf` next to config.json (docs/interop.md).
# It computes what gqe's C++ model computes (docs/method.md; src/gqe/model/, src/gqe/attention/): the same
# parameters under Hugging Face names, pre-norm blocks, rotate-half RoPE with angles in float64, causal
# softmax attention scaled by 1/sqrt(d_h), and for GQE the router (softmax within each group, then top-k,
# ties to the lower expert index), kG hard slots, the renormalised weighted slot and the shared head over the
# mean K/V. Clear rather than fast: every selected query head is computed from all N projections.
#
# That plain path ("eager") is the reference. When the `gqe` Python package is installed, the attention
# blocks can instead run through the package's blocks (gqe.GQEAttention / gqe.GQAAttention over gqe's
# kernels, "gqe_ops"); config.attention_implementation chooses: "auto" (the default), "gqe_ops" or "eager".
# This file must keep working without the package: `gqe export` copies it into folders used anywhere.
import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

try:  # transformers 5: initialisers that leave weights loaded from the checkpoint alone
    from transformers import initialization as _init
except ImportError:
    _init = nn.init

try:
    from .configuration_gqe import GqeConfig
except ImportError:  # loaded as a top-level module (tests, or the files copied elsewhere)
    from configuration_gqe import GqeConfig

ATTENTION_IMPLEMENTATIONS = ("auto", "gqe_ops", "eager")

_NOT_LOOKED_UP = object()
_gqe = _NOT_LOOKED_UP  # the gqe package once looked up: the module, or None
_gqe_error = None  # why it could not be imported


def gqe_package():
    """The installed gqe package (its ops library loaded), or None when it cannot be imported. Looked up
    once, at the first forward pass that could use it."""
    global _gqe, _gqe_error
    if _gqe is _NOT_LOOKED_UP:
        try:
            import gqe

            where = getattr(gqe, "__file__", "?")
            if not hasattr(gqe, "GQEAttention"):
                raise ImportError(f"the module gqe at {where} is not gqe's package")
            # A folder outlives the package it was exported beside: an older one, whose blocks take no
            # cache, counts as absent.
            if "cache_update" not in inspect.signature(gqe.GQEAttention.forward).parameters:
                raise ImportError(f"the gqe package at {where} is too old (its blocks take no cache_update)")
            _gqe, _gqe_error = gqe, None
        except Exception as e:  # noqa: BLE001 - also an ops library that fails to load (built for another torch)
            _gqe, _gqe_error = None, e
    return _gqe


def _autocast_enabled(device_type):
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch before 2.4: no device argument
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


# transformers 5 names the KV cache argument and output field `cache`; earlier versions `past_key_values`.
_CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class GqeNorm(nn.Module):
    """RMSNorm (weight) or LayerNorm (weight, bias), as gqe's Norm."""

    def __init__(self, dim, eps, layernorm):
        super().__init__()
        self.eps = eps
        self.layernorm = layernorm
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if layernorm else None

    def forward(self, x):
        if self.layernorm:
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class GqeMLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)); GELU: down(gelu(up(x))) with the exact (erf) GELU. Bias-free."""

    def __init__(self, config):
        super().__init__()
        d, f = config.hidden_size, config.intermediate_size
        self.swiglu = config.mlp_type == "swiglu"
        if self.swiglu:
            self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        if self.swiglu:
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(F.gelu(self.up_proj(x)))


def rope(x, positions, theta):
    """Rotate-half RoPE of x [B, T, H, d_h] at positions [B, T]: pairs (i, i + d_h/2) turn by
    pos * theta^(-2i/d_h); the angles are computed in float64 and then cast, as gqe does."""
    half = x.shape[-1] // 2
    inv_freq = torch.pow(
        torch.tensor(theta, dtype=torch.float64, device=x.device),
        -torch.arange(0, half, dtype=torch.float64, device=x.device) * (2.0 / x.shape[-1]),
    )
    ang = positions.to(torch.float64).unsqueeze(-1) * inv_freq  # [B, T, half]
    cos = torch.cos(ang).to(x.dtype).unsqueeze(2)
    sin = torch.sin(ang).to(x.dtype).unsqueeze(2)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attend(q, k, v, start, key_mask):
    """Causal attention, GQA-native. q [B, Tq, Hq, d_h] are the tokens at cache indices start..start+Tq-1;
    k, v [B, G, L, d_h] hold indices 0..L-1; query head h attends against KV head h // (Hq / G).
    key_mask [B, L] bool (False: a padding token, never attended to) or None. Returns [B, Tq, Hq, d_h]."""
    B, Tq, Hq, dh = q.shape
    G, L = k.shape[1], k.shape[2]
    rep = Hq // G
    qh = q.transpose(1, 2)  # [B, Hq, Tq, d_h]
    kh = k.repeat_interleave(rep, dim=1) if rep > 1 else k
    vh = v.repeat_interleave(rep, dim=1) if rep > 1 else v
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * (1.0 / math.sqrt(dh))  # [B, Hq, Tq, L]
    qi = torch.arange(start, start + Tq, device=q.device).unsqueeze(1)
    allowed = torch.arange(L, device=q.device).unsqueeze(0) <= qi  # [Tq, L]
    allowed = allowed.view(1, 1, Tq, L)
    if key_mask is not None:
        allowed = allowed & key_mask.view(B, 1, 1, L)
    scores = scores.masked_fill(~allowed, float("-inf"))
    # At least float32 (bf16/fp16 scores are upcast), float64 stays float64.
    p = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1).to(vh.dtype)
    p = torch.nan_to_num(p)  # a padding query with no visible key: zeros, not NaN
    return torch.matmul(p, vh).transpose(1, 2)


class GqeAttention(nn.Module):
    """GQA (attention_kind "gqa") or GQE (attention_kind "gqe") with gqe's parameters:
    q_proj [N*d_h, d] (GQE: expert (g, m) owns rows (g*M + m)*d_h ..), k_proj, v_proj [G*d_h, d],
    router [G*M, d] (GQE), shared_q_proj [d_h, d] (variant gqe), o_proj [d, slots*d_h]."""

    def __init__(self, config, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.config = config
        self.kind = config.attention_kind
        self.variant = config.gqe_variant
        self.N, self.G, self.dh = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.M, self.k = config.experts_per_group, config.top_k_per_group
        self.rope = config.position_embedding == "rope"
        self.theta = config.rope_theta
        self.eps = config.router_denominator_eps
        self._gqe_block = None  # the package's block for the gqe_ops path, built on first use
        d = config.hidden_size
        self.q_proj = nn.Linear(d, self.N * self.dh, bias=False)
        self.k_proj = nn.Linear(d, self.G * self.dh, bias=False)
        self.v_proj = nn.Linear(d, self.G * self.dh, bias=False)
        if self.kind == "gqe":
            self.router = nn.Linear(d, self.G * self.M, bias=False)
            if self.variant == "gqe":
                self.shared_q_proj = nn.Linear(d, self.dh, bias=False)
        self.o_proj = nn.Linear(config.num_slots * self.dh, d, bias=False)

    def route(self, x):
        """Softmax within each group, then the top-k of each group (a stable descending sort: ties go to the
        lower expert index). Returns probs [B,T,G,M], selected [B,T,G,k], selected probs [B,T,G,k]."""
        B, T, _ = x.shape
        # The router in at least float32, autocast or not (float64 stays float64): bf16 logits flip top-k
        # choices on near-ties, and the model would route unlike gqe's (which does the same).
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = F.linear(x.to(dtype), self.router.weight.to(dtype))
        probs = torch.softmax(logits.view(B, T, self.G, self.M), dim=-1)
        selected = torch.sort(probs.detach(), dim=-1, descending=True, stable=True)[1][..., : self.k]
        return probs, selected, probs.gather(-1, selected)

    def gqe_block(self):
        """The gqe package's block with this layer's configuration; its own parameters are placeholders (on
        the meta device, never computed with): forward_gqe_ops calls it with this module's parameters, which
        have the same names."""
        if self._gqe_block is None:
            gqe = gqe_package()
            c = self.config
            # implementation "fast": the package picks the kernels per input (its CPU kernels for fp32 CPU).
            common = dict(hidden_size=c.hidden_size, num_attention_heads=self.N, num_key_value_heads=self.G,
                          head_dim=self.dh, rope_theta=self.theta, position_embedding=c.position_embedding,
                          implementation="fast")
            with torch.device("meta"):
                if self.kind == "gqa":
                    block = gqe.GQAAttention(**common)
                else:
                    block = gqe.GQEAttention(top_k=self.k, variant=self.variant, aux_loss_weight=c.aux_loss_weight,
                                             router_denominator_eps=self.eps, **common)
            # Kept out of the module tree: the model's parameter names (the checkpoint's) stay as they are.
            self.__dict__["_gqe_block"] = block
        return self._gqe_block

    def forward_gqe_ops(self, x, start, cache):
        """The gqe_ops path: the package's block on this module's parameters; the cache (if any) gets the
        same keys and values, in the same layout, as on the eager path."""
        update = None
        if cache is not None:
            def update(k, v):  # the package's [B, T, G, d_h] <-> the cache's [B, G, T, d_h]
                k, v = cache.update(k.transpose(1, 2), v.transpose(1, 2), self.layer_idx)
                return k.transpose(1, 2), v.transpose(1, 2)
        params = dict(self.named_parameters())
        return torch.func.functional_call(self.gqe_block(), params, (x,), {"start": start, "cache_update": update},
                                          strict=True)

    def forward(self, x, positions, start, cache, key_mask, use_gqe_ops=False):
        if use_gqe_ops:
            return self.forward_gqe_ops(x, start, cache)
        B, T, _ = x.shape
        G, dh = self.G, self.dh
        k = self.k_proj(x).view(B, T, G, dh)
        v = self.v_proj(x).view(B, T, G, dh)
        if self.rope:
            k = rope(k, positions, self.theta)
        k, v = k.transpose(1, 2), v.transpose(1, 2)  # [B, G, T, d_h], the cache's layout
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        aux = x.new_zeros(())

        if self.kind == "gqa":
            q = self.q_proj(x).view(B, T, self.N, dh)
            if self.rope:
                q = rope(q, positions, self.theta)
            o = attend(q, k, v, start, key_mask)  # head h uses KV head h // M
            return self.o_proj(o.reshape(B, T, self.N * dh)), aux

        # 1. Route.
        probs, selected, selected_probs = self.route(x)
        aux = load_balancing_loss(probs, selected)
        # 2. The selected experts' queries: slot head g*k + r holds the r-th choice of group g.
        q_all = self.q_proj(x).view(B, T, G, self.M, dh)
        q = q_all.gather(3, selected.unsqueeze(-1).expand(B, T, G, self.k, dh)).reshape(B, T, G * self.k, dh)
        if self.rope:
            q = rope(q, positions, self.theta)
        o_sel = attend(q, k, v, start, key_mask).view(B, T, G, self.k, dh)
        # 3. The slots W_O reads.
        if self.variant == "weighted_concat":  # each slot scaled by its raw probability
            slots = (selected_probs.unsqueeze(-1) * o_sel).reshape(B, T, G * self.k * dh)
        else:
            hard = o_sel.reshape(B, T, G * self.k * dh)  # unscaled, by group, then by rank
            if self.variant == "hard_concat":
                slots = hard
            else:
                # Renormalised weighted slot: normalised jointly over groups and ranks.
                w = selected_probs / selected_probs.sum(dim=(2, 3), keepdim=True).clamp_min(self.eps)
                obar = (w.unsqueeze(-1) * o_sel).sum(dim=(2, 3))  # [B, T, d_h]
                # Shared head: its own query against the mean of the G KV heads (keys after RoPE).
                qs = self.shared_q_proj(x).view(B, T, 1, dh)
                if self.rope:
                    qs = rope(qs, positions, self.theta)
                s = attend(qs, k.mean(dim=1, keepdim=True), v.mean(dim=1, keepdim=True), start, key_mask)
                slots = torch.cat([hard, obar, s.reshape(B, T, dh)], dim=-1)
        return self.o_proj(slots), aux


def load_balancing_loss(probs, selected):
    """Switch-Transformer load balancing per group, averaged over groups: mean_g M * sum_m f[g,m] P[g,m]."""
    M = probs.shape[-1]
    p = probs.flatten(0, 1)  # [BT, G, M]
    chosen = torch.zeros_like(p.detach()).scatter_(-1, selected.flatten(0, 1), 1.0)
    return ((chosen.mean(0) * p.mean(0)).sum(-1) * M).mean()


class GqeDecoderLayer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        ln = config.norm_type == "layernorm"
        self.input_layernorm = GqeNorm(config.hidden_size, config.rms_norm_eps, ln)
        self.self_attn = GqeAttention(config, layer_idx)
        self.post_attention_layernorm = GqeNorm(config.hidden_size, config.rms_norm_eps, ln)
        self.mlp = GqeMLP(config)

    def forward(self, h, positions, start, cache, key_mask, use_gqe_ops=False):
        a, aux = self.self_attn(self.input_layernorm(h), positions, start, cache, key_mask, use_gqe_ops)
        h = h + a
        return h + self.mlp(self.post_attention_layernorm(h)), aux


class GqePreTrainedModel(PreTrainedModel):
    config_class = GqeConfig
    base_model_prefix = "model"
    _no_split_modules = ["GqeDecoderLayer"]
    _supports_cache_class = True

    def _init_weights(self, module):
        # Only for weights a checkpoint does not provide (a model built from a config).
        super()._init_weights(module)
        if isinstance(module, GqeNorm):
            _init.ones_(module.weight)
            if module.bias is not None:
                _init.zeros_(module.bias)
        elif isinstance(module, GqeAttention) and hasattr(module, "router"):
            _init.zeros_(module.router.weight)  # routing starts uniform, as in gqe


class GqeModel(GqePreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([GqeDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = GqeNorm(config.hidden_size, config.rms_norm_eps, config.norm_type == "layernorm")
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def attention_path(self, h, position_ids, start, key_mask):
        """Which path the attention blocks take for this call: "gqe_ops" or "eager", by
        config.attention_implementation. The package's blocks run one causal sequence per row at the
        positions start.., with no padding mask; "auto" takes them when the package imports and h is fp32
        on the CPU outside autocast (where gqe's kernels run), and "gqe_ops" refuses a call they cannot run
        rather than fall back."""
        impl = self.config.attention_implementation
        if impl not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(f"attention_implementation: unknown value {impl!r} "
                             f"({', '.join(ATTENTION_IMPLEMENTATIONS)})")
        if impl == "eager":
            return "eager"
        B, T, _ = h.shape
        unsupported = None
        if key_mask is not None:
            unsupported = "a padding attention_mask"
        elif position_ids is not None and not torch.equal(
                position_ids.expand(B, T), torch.arange(start, start + T, device=h.device).expand(B, T)):
            unsupported = "position_ids other than the cache position onwards in every row"
        elif _autocast_enabled(h.device.type):
            unsupported = "autocast"
        if impl == "gqe_ops":
            if unsupported:
                raise ValueError(f"attention_implementation 'gqe_ops' cannot run {unsupported}; use 'auto' or 'eager'")
            if gqe_package() is None:
                raise ImportError(f"attention_implementation 'gqe_ops' needs the gqe package: {_gqe_error}")
            return "gqe_ops"
        fast = h.device.type == "cpu" and h.dtype == torch.float32
        return "gqe_ops" if not unsupported and fast and gqe_package() is not None else "eager"

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                use_cache=None, **kwargs):
        if cache is None:
            cache = kwargs.pop("past_key_values", None)
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        B, T, _ = inputs_embeds.shape
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if not use_cache:
            cache = None
        start = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(start, start + T, device=inputs_embeds.device).unsqueeze(0).expand(B, T)
        key_mask = None
        if attention_mask is not None and attention_mask.dim() == 2 and not bool(attention_mask.all()):
            key_mask = attention_mask.bool()[:, -(start + T):]
        h = inputs_embeds
        use_gqe_ops = self.attention_path(h, position_ids, start, key_mask) == "gqe_ops"
        aux = h.new_zeros(())
        for layer in self.layers:
            h, a = layer(h, position_ids, start, cache, key_mask, use_gqe_ops)
            aux = aux + a
        out = BaseModelOutputWithPast(last_hidden_state=self.norm(h), **{_CACHE_FIELD: cache})
        out.aux_loss = aux  # the load-balancing loss summed over layers (unweighted), as gqe's LMOutput
        return out


class GqeForCausalLM(GqePreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.model = GqeModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        """With labels, the loss is gqe's training loss: next-token cross-entropy + aux_loss_weight times the
        load-balancing loss summed over layers (zero for GQA)."""
        if cache is None:
            cache = kwargs.pop("past_key_values", None)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                         inputs_embeds=inputs_embeds, use_cache=use_cache)
        h = out.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            h = h[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            h = h[:, logits_to_keep]
        logits = self.lm_head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
            if self.config.attention_kind == "gqe":
                loss = loss + self.config.aux_loss_weight * out.aux_loss
        return CausalLMOutputWithPast(loss=loss, logits=logits, **{_CACHE_FIELD: getattr(out, _CACHE_FIELD)})
