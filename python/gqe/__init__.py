"""gqe for PyTorch: Grouped Query Experts (and GQA) attention backed by gqe's own kernels.

    import gqe
    attn = gqe.GQEAttention(hidden_size=128, num_attention_heads=8, num_key_value_heads=4, head_dim=16)
    y, aux_loss = attn(x)   # x [B, T, 128] fp32 on the CPU: gqe's fast kernels; other dtypes: the reference ops
    model = gqe.load("runs/tiny-gqe")   # a gqe run as a GQEForCausalLM, eval mode
    logits, aux_loss = model(tokens)

The ops are torch.ops.gqe.* (gqe.ops has their Python entry points); docs/python.md says what exists.
"""
from . import ops
from .model import CausalLMOutput, GQEForCausalLM, load
from .modules import GQAAttention, GQEAttention, attention_from_config

__all__ = ["ops", "GQAAttention", "GQEAttention", "attention_from_config", "GQEForCausalLM", "CausalLMOutput", "load"]
