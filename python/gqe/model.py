"""The whole gqe language model as an nn.Module over the package's attention blocks, and `load(run_dir)`.

GQEForCausalLM is gqe's LanguageModel (src/gqe/model/transformer.h): token embedding, pre-norm decoder
blocks (norm -> attention, norm -> MLP, each residual), final norm, LM head tied to the embedding unless
`tie_word_embeddings` is false. It serves GQA configs too (attention.kind "gqa"). Parameter names are those
of gqe's checkpoints (docs/checkpoints.md), so a run's model.safetensors loads with load_state_dict(strict=True).
"""

import json
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .modules import GQEAttention, attention_from_config

_NORM_TYPES = ("rmsnorm", "layernorm")
_MLP_TYPES = ("swiglu", "gelu")


class CausalLMOutput(NamedTuple):
    logits: torch.Tensor    # [B, T, V]
    aux_loss: torch.Tensor  # scalar: the load-balancing loss summed over layers, unweighted (zero for GQA)


class Norm(nn.Module):
    """RMSNorm (weight) or LayerNorm (weight, bias), as gqe's Norm computes them."""

    def __init__(self, dim, eps, layernorm):
        super().__init__()
        self.eps = float(eps)
        self.layernorm = layernorm
        self.weight = nn.Parameter(torch.ones(dim))
        if layernorm:
            self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        if self.layernorm:
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MLP(nn.Module):
    """SwiGLU down(silu(gate(x)) * up(x)) or down(gelu(up(x))) with the exact (erf) GELU; bias-free."""

    def __init__(self, hidden_size, intermediate_size, swiglu, initializer_range):
        super().__init__()
        self.swiglu = swiglu
        if swiglu:
            self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)
        for layer in self.children():
            nn.init.normal_(layer.weight, 0.0, initializer_range)  # gqe's MLP init (layers.cpp)

    def forward(self, x):
        if self.swiglu:
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(F.gelu(self.up_proj(x)))


class DecoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        d, eps, layernorm = config["hidden_size"], config.get("rms_norm_eps", 1e-5), _layernorm(config)
        self.attn_norm = Norm(d, eps, layernorm)
        self.attn = attention_from_config(config)
        self.mlp_norm = Norm(d, eps, layernorm)
        self.mlp = MLP(d, config["intermediate_size"], _swiglu(config), config.get("initializer_range", 0.02))

    def forward(self, h):
        y, aux_loss = self.attn(self.attn_norm(h))
        h = h + y
        return h + self.mlp(self.mlp_norm(h)), aux_loss


def _layernorm(config):
    norm_type = config.get("norm_type", "rmsnorm")
    if norm_type not in _NORM_TYPES:
        raise ValueError(f"norm_type: unknown value {norm_type!r} ({', '.join(_NORM_TYPES)})")
    return norm_type == "layernorm"


def _swiglu(config):
    mlp_type = config.get("mlp_type", "swiglu")
    if mlp_type not in _MLP_TYPES:
        raise ValueError(f"mlp_type: unknown value {mlp_type!r} ({', '.join(_MLP_TYPES)})")
    return mlp_type == "swiglu"


class GQEForCausalLM(nn.Module):
    """gqe's decoder-only language model from a gqe model config dict (configs/*.json, a run's config.json).

    forward(tokens [B, T] int64) -> CausalLMOutput(logits [B, T, V], aux_loss): a full causal pass (no KV
    cache yet), as gqe's LanguageModel::forward. `loss(output, targets)` is the training loss `gqe train`
    minimises: mean cross-entropy + attention.aux_loss_weight * aux_loss (GQE only).
    """

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size"):
            if int(config[field]) <= 0:
                raise ValueError(f"{field} must be positive")
        d, std = config["hidden_size"], config.get("initializer_range", 0.02)
        self.embed_tokens = nn.Embedding(config["vocab_size"], d)
        nn.init.normal_(self.embed_tokens.weight, 0.0, std)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config["num_hidden_layers"]))
        self.norm = Norm(d, config.get("rms_norm_eps", 1e-5), _layernorm(config))
        self.tie_word_embeddings = bool(config.get("tie_word_embeddings", True))
        if not self.tie_word_embeddings:
            self.lm_head = nn.Linear(d, config["vocab_size"], bias=False)
            nn.init.normal_(self.lm_head.weight, 0.0, std)
        # gqe train adds the weighted aux loss for GQE only (trainer.cpp); the weight is a training knob.
        attention = self.layers[0].attn
        self.aux_loss_weight = attention.aux_loss_weight if isinstance(attention, GQEAttention) else 0.0

    def forward(self, tokens):
        h = self.embed_tokens(tokens)
        aux_loss = h.new_zeros(())
        for layer in self.layers:
            h, layer_aux = layer(h)
            aux_loss = aux_loss + layer_aux
        head = self.embed_tokens.weight if self.tie_word_embeddings else self.lm_head.weight
        return CausalLMOutput(F.linear(self.norm(h), head), aux_loss)

    def loss(self, output: CausalLMOutput, targets):
        """(training loss, language-model loss): cross-entropy in fp32, mean over tokens, plus the weighted
        load-balancing loss, as one micro-batch of `gqe train`."""
        lm = F.cross_entropy(output.logits.float().reshape(-1, output.logits.shape[-1]), targets.reshape(-1))
        if self.aux_loss_weight == 0:
            return lm, lm
        return lm + self.aux_loss_weight * output.aux_loss.float(), lm


def _read_safetensors(path: Path):
    try:
        from safetensors.torch import load_file
    except ImportError:  # torch has no reader of the format itself; the package is a light dependency
        raise ImportError("gqe.load needs the safetensors package (pip install safetensors)") from None
    return load_file(str(path))


def load(run_dir, implementation: str = None) -> GQEForCausalLM:
    """The model of a gqe run directory or checkpoint folder (RUN/ or RUN/checkpoints/step-N/: config.json
    and model.safetensors), with its weights, in eval mode. `implementation` ("fast", "reference") overrides
    the config's attention.implementation."""
    run_dir = Path(run_dir)
    for name in ("config.json", "model.safetensors"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"gqe.load: {run_dir / name} is missing (a gqe run directory or "
                                    "checkpoints/step-N folder holds config.json and model.safetensors)")
    config = json.loads((run_dir / "config.json").read_text())
    if implementation is not None:
        config["attention"] = dict(config["attention"], implementation=implementation)
    model = GQEForCausalLM(config)
    model.load_state_dict(_read_safetensors(run_dir / "model.safetensors"), strict=True)
    return model.eval()
