"""gqe for PyTorch: Grouped Query Experts (and GQA) attention backed by gqe's own kernels.

    import gqe
    attn = gqe.GQEAttention(hidden_size=128, num_attention_heads=8, num_key_value_heads=4, head_dim=16)
    y, aux_loss = attn(x)   # x [B, T, 128] fp32 on the CPU: gqe's fast kernels; other dtypes: the reference ops

The ops are torch.ops.gqe.* (gqe.ops has their Python entry points); docs/python.md says what exists.
"""
from . import ops
from .modules import GQAAttention, GQEAttention

__all__ = ["ops", "GQAAttention", "GQEAttention"]
