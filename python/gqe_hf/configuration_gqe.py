# Hugging Face configuration of a gqe model (written by `gqe export --format hf`; docs/interop.md).
# The fields are gqe's model config (README, "Model config") flattened: the attention block's fields sit
# beside the model's, as Hugging Face configs have them.
from transformers import PretrainedConfig


class GqeConfig(PretrainedConfig):
    model_type = "gqe"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size=256,
        hidden_size=1024,
        num_hidden_layers=12,
        intermediate_size=2816,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        norm_type="rmsnorm",  # "rmsnorm" | "layernorm"
        mlp_type="swiglu",  # "swiglu" | "gelu" (exact erf GELU)
        position_embedding="rope",  # "rope" | "none"
        initializer_range=0.02,
        attention_kind="gqe",  # "gqe" | "gqa"
        num_attention_heads=16,  # N: query heads (GQA) or routed experts (GQE)
        num_key_value_heads=8,  # G: KV heads = groups
        head_dim=64,
        top_k_per_group=1,  # k: experts per group per token (GQE; gqe's attention.top_k)
        gqe_variant="gqe",  # "gqe" | "hard_concat" | "weighted_concat"
        aux_loss_weight=0.01,
        router_denominator_eps=1e-9,
        attention_kernels="fast",  # gqe's attention.implementation (kept for gqe import); no effect here
        # Which path modeling_gqe.py's attention takes: "eager" (plain PyTorch, the reference), "gqe_ops" (the
        # gqe package's blocks over gqe's kernels; an error without the package) or "auto" (gqe_ops when the
        # package imports and the call is fp32 on the CPU, without padding or autocast; else eager).
        attention_implementation="auto",
        use_cache=True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.norm_type = norm_type
        self.mlp_type = mlp_type
        self.position_embedding = position_embedding
        self.initializer_range = initializer_range
        self.attention_kind = attention_kind
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.top_k_per_group = top_k_per_group
        self.gqe_variant = gqe_variant
        self.aux_loss_weight = aux_loss_weight
        self.router_denominator_eps = router_denominator_eps
        self.attention_kernels = attention_kernels
        if attention_implementation not in ("auto", "gqe_ops", "eager"):
            raise ValueError(f"attention_implementation: unknown value {attention_implementation!r} "
                             "(auto, gqe_ops, eager)")
        self.attention_implementation = attention_implementation
        self.use_cache = use_cache
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @property
    def experts_per_group(self):  # M = N / G
        return self.num_attention_heads // self.num_key_value_heads

    @property
    def num_slots(self):
        """d_h-wide inputs into W_O: N for GQA; kG + 2 for gqe; kG for the ablations."""
        if self.attention_kind == "gqa":
            return self.num_attention_heads
        hard = self.top_k_per_group * self.num_key_value_heads
        return hard + 2 if self.gqe_variant == "gqe" else hard
