#!/usr/bin/env python3
"""A cost model of the GQA and GQE attention layers on H100 and H200 GPUs: a model, not a measurement.

    python3 scripts/gpu-cost-model.py --markdown          # the "Cost model" section of docs/gpu.md, exactly
    python3 scripts/gpu-cost-model.py --kernels gqe-after --n 4096 --gpu h100 [--train]
                                                          # one layer's kernels with their modelled times

Every layer is a list of kernels, as the CUDA path issues them through libtorch (src/gqe/attention/,
src/gqe/kernels/cuda/); each kernel has its FLOPs and the bytes it moves in HBM. A kernel lasts
max(FLOPs / achievable FLOP/s, bytes / achievable bandwidth, a minimum) plus a gap; the host issues one
launch every `launch_s` seconds and a host synchronisation stops it until the GPU has drained. The layer's
time is when the last kernel ends. Attention kernels are timed by scheduling their causal tiles on the
SMs, so that a call with few heads at a short length pays for the SMs it leaves idle.
Every number the model rests on is in GPUS and Assumptions below, and the markdown lists them.
Python 3 standard library only.
"""
import argparse
import dataclasses
import functools
import heapq
import re
import sys
import textwrap


# ----------------------------------------------------------------------------------------------------------
# Assumptions: every number of the model, in one place. The markdown's assumption list is written from here.

@dataclasses.dataclass(frozen=True)
class Gpu:
    key: str
    name: str
    bf16_flops: float      # dense tensor-core peak, FLOP/s
    fp32_flops: float      # non-tensor fp32 peak (libtorch's fp32 matmul default: no TF32), FLOP/s
    hbm_bytes_per_s: float
    sms: int


GPUS = [
    # NVIDIA's H100 SXM5 and H200 SXM datasheets: the same GH100 compute die (132 SMs), HBM3 vs HBM3e.
    Gpu("h100", "H100 SXM (HBM3)", 989e12, 67e12, 3.35e12, 132),
    Gpu("h200", "H200 (HBM3e)", 989e12, 67e12, 4.8e12, 132),
]


@dataclasses.dataclass(frozen=True)
class Assumptions:
    # Flash attention, steady state, as a fraction of the bf16 peak. FlashAttention-2 (Dao 2023) reports
    # 50-73% of an A100's peak forward; FlashAttention-3 (Shah et al. 2024) up to 75% of an H100's at head
    # dims 128-256, less at d_h 64, where FA2-class kernels (libtorch's in-tree flash backend does not use
    # Hopper's wgmma/TMA) stay well below half the H100 peak. 0.40 forward sits between the two.
    flash_fwd_efficiency: float = 0.40
    flash_bwd_efficiency: float = 0.30   # a backward reaches less of the peak than its forward (FA2 paper): 3/4 here
    flash_tile: int = 128                # query rows and keys per tile (FA2's forward at d_h 64; backward alike)
    flash_by_tiles: bool = True          # False: a flash call's time from its FLOPs alone (no idle SMs)
    gemm_efficiency: float = 0.75        # cuBLAS bf16, large GEMMs on Hopper: ~700-750 of 989 TFLOP/s
    grouped_gemm_efficiency: float = 0.60  # at::_grouped_mm, 64 output columns per expert
    fp32_gemm_efficiency: float = 0.70
    gemm_tile: int = 128                 # output tile edge; fewer tiles than SMs leave SMs idle (split-K aside)
    split_k_min_depth: int = 512         # cuBLAS splits the inner dimension in chunks of at least this
    bandwidth_efficiency: float = 0.80   # elementwise / copy / reduction kernels on large tensors
    launch_s: float = 4.5e-6             # host time per kernel: libtorch dispatch + cudaLaunchKernel
    kernel_min_s: float = 1.5e-6         # the shortest kernel body
    kernel_gap_s: float = 1.0e-6         # idle GPU time between two dependent kernels
    sync_s: float = 15e-6                # a host synchronisation: drain, copy to host, resume issuing
    sort_passes: int = 8                 # CUB onesweep radix sort of int64 keys: 8-bit digits
    sort_launches: int = 12              # its histogram, scan and pass kernels plus libtorch's copies
    mlp_chunk_rows: int = 2048           # MLP::forward's inference chunk (src/gqe/model/layers.cpp)
    autocast: bool = True                # bf16 autocast over fp32 weights and residual stream, as gqe runs


BASE = Assumptions()
WIDTH = 110  # the markdown's prose width
BF16, FP32, INT64 = 2, 4, 8


@dataclasses.dataclass(frozen=True)
class Shape:
    d: int
    heads: int       # N query heads (GQA) = routed experts (GQE)
    kv_heads: int    # G
    head_dim: int
    top_k: int
    mlp: int

    @property
    def experts_per_group(self):
        return self.heads // self.kv_heads

    @property
    def slots(self):  # W_O's input heads for variant gqe: kG hard + weighted + shared
        return self.top_k * self.kv_heads + 2

    def describe(self):
        return "%d query heads over %d KV heads, k %d (M %d)" % (self.heads, self.kv_heads, self.top_k,
                                                                  self.experts_per_group)


PAPER = Shape(d=1024, heads=16, kv_heads=8, head_dim=64, top_k=1, mlp=2816)      # configs/paper-gqe-16-8-1.json
PAPER_K2 = Shape(d=1024, heads=16, kv_heads=4, head_dim=64, top_k=2, mlp=2816)
LENGTHS = [2048, 4096, 16384, 65536, 262144, 1048576]


# ----------------------------------------------------------------------------------------------------------
# Kernels

@dataclasses.dataclass
class Kernel:
    name: str
    level: str                 # "core" (attention), "layer" (the rest of the attention layer), "block"
    kind: str                  # gemm, gemm_fp32, grouped, flash, flash_bwd, memory, sync, none
    flops: float = 0.0
    bytes: float = 0.0
    dims: tuple = ()           # gemm: (rows, columns, depth); flash: (n, query heads, kv heads, d_h)
    backward: list = dataclasses.field(default_factory=list)


LEVELS = {"core": ("core",), "layer": ("core", "layer"), "block": ("core", "layer", "block")}


def gemm(name, level, rows, cols, depth, kind="gemm", elem=BF16):
    """x [rows, depth] @ w [depth, cols]; backward: dX and dW, each as many FLOPs."""
    f = 2.0 * rows * cols * depth
    fwd = Kernel(name, level, kind, f, elem * (rows * depth + depth * cols + rows * cols), (rows, cols, depth))
    fwd.backward = [
        Kernel(name + " dX", level, kind, f, elem * (rows * cols + depth * cols + rows * depth), (rows, depth, cols)),
        Kernel(name + " dW", level, kind, f, elem * (rows * cols + rows * depth + depth * cols), (depth, cols, rows))]
    return [fwd]


def mem(name, level, read, write, backward=()):
    """A memory-bound kernel; backward: (name, read, write) per kernel of its gradient."""
    k = Kernel(name, level, "memory", 0.0, read + write)
    k.backward = [Kernel(name + " " + b[0], level, "memory", 0.0, b[1] + b[2]) for b in backward]
    return k


def accumulate(level, elems, count, elem=BF16):
    """Gradient accumulation of a tensor used count + 1 times: count adds, backward only."""
    k = Kernel("grad accumulate", level, "none")
    k.backward = [Kernel("grad add", level, "memory", 0.0, 3.0 * elems * elem) for _ in range(count)]
    return k


def sync(name, level):
    return Kernel(name, level, "sync")


def flash(name, level, n, q_heads, kv_heads, dh):
    """libtorch SDPA (flash backend), causal, batch 1. Backward as FA2 runs it: dO.O, the main kernel, dQ's
    fp32 accumulator converted; with more query than KV heads, dK and dV per query head summed per group."""
    qo, kv = n * q_heads * dh * BF16, n * kv_heads * dh * BF16
    flops = 4.0 * q_heads * dh * n * (n + 1) / 2.0
    k = Kernel(name, level, "flash", flops, 2 * qo + 2 * kv + n * q_heads * FP32, (n, q_heads, kv_heads, dh))
    k.backward = [Kernel(name + " bwd dO.O", level, "memory", 0.0, 2 * qo + n * q_heads * FP32),
                  Kernel(name + " bwd", level, "flash_bwd", 2.5 * flops,
                         4 * qo + 4 * kv + n * q_heads * FP32 * 3, (n, q_heads, kv_heads, dh)),
                  Kernel(name + " bwd dQ convert", level, "memory", 0.0, qo * 3)]
    if q_heads > kv_heads:
        k.backward += [Kernel(name + " bwd sum dK over group", level, "memory", 0.0, qo + kv),
                       Kernel(name + " bwd sum dV over group", level, "memory", 0.0, qo + kv)]
    return [k]


# ----------------------------------------------------------------------------------------------------------
# Pieces of a layer. `a.autocast`: the layer's input x and the residual stream are fp32 and the weights fp32
# masters, as under gqe's bf16 autocast on CUDA; otherwise everything is bf16 already.

def activation_bytes(a):
    return FP32 if a.autocast else BF16


def linear(name, level, rows, cols, depth, a, x_fp32=True):
    """A bias-free linear layer run in bf16. Under autocast it casts its weight (once per forward) and, when
    its input is fp32, the input too: autocast keeps cast weights for the forward, never cast activations."""
    ks = []
    if a.autocast:
        w = depth * cols
        ks.append(mem(name + " weight to bf16", level, w * FP32, w * BF16, [("dW to fp32", w * BF16, w * FP32)]))
        if x_fp32:
            x = rows * depth
            ks.append(mem(name + " x to bf16", level, x * FP32, x * BF16, [("dX to fp32", x * BF16, x * FP32)]))
    return ks + gemm(name, level, rows, cols, depth)


def rope_plain(label, n, heads, dh):
    """kernels::rope_reference: angles in double recomputed per call (arange, neg, mul, pow, arange, outer,
    cos, sin, two casts), then x1*cos - x2*sin, x2*cos + x1*sin and a cat: 17 kernels."""
    half = dh // 2
    xh, table = n * heads * half * BF16, n * half * BF16
    ks = [mem("RoPE %s angles %d" % (label, i), "layer", r, w) for i, (r, w) in enumerate([
        (0, half * 8), (half * 8, half * 8), (half * 8, half * 8), (half * 8, half * 8), (0, n * 8),
        (n * 8, n * half * 8), (n * half * 8, n * half * 8), (n * half * 8, n * half * 8),
        (n * half * 8, table), (n * half * 8, table)])]
    mul_bwd = [("grad", xh + table, xh)]
    for op in ["x1*cos", "x2*sin"]:
        ks.append(mem("RoPE %s %s" % (label, op), "layer", xh + table, xh, mul_bwd))
    ks.append(mem("RoPE %s sub" % label, "layer", 2 * xh, xh, [("neg", xh, xh)]))
    for op in ["x2*cos", "x1*sin"]:
        ks.append(mem("RoPE %s %s" % (label, op), "layer", xh + table, xh, mul_bwd))
    ks.append(mem("RoPE %s add" % label, "layer", 2 * xh, xh))
    # Backward of the two narrows: zeros of the full size plus a slice copy each, then their sum; x1 and x2
    # each get two gradients.
    ks.append(mem("RoPE %s cat" % label, "layer", 2 * xh, 2 * xh,
                  [("x1 grads add", 2 * xh, xh), ("x2 grads add", 2 * xh, xh), ("x1 zeros", 0, 2 * xh),
                   ("x1 slice", xh, xh), ("x2 zeros", 0, 2 * xh), ("x2 slice", xh, xh),
                   ("halves add", 4 * xh, 2 * xh)]))
    return ks


def rope_cached(label, n, heads, dh):
    """One kernel reading cos/sin from a table cached per device and length; its backward is one too."""
    x, table = n * heads * dh * BF16, n * dh * BF16
    return [mem("RoPE %s (cached table)" % label, "layer", x + table, x, [("grad", x + table, x)])]


def rope(mode, label, n, heads, dh):
    return rope_plain(label, n, heads, dh) if mode == "plain" else rope_cached(label, n, heads, dh)


def routing(s, n, a, fp32_router):
    """Router linear, softmax per group, the CUDA top-k kernel, the selected probabilities, the renormalised
    weights and the load-balancing loss (route_tokens + weigh_routing). A bf16 router under autocast gives
    bf16 logits that softmax (an fp32 op for autocast) casts first; an fp32 router reads fp32 x directly
    (or casts a bf16 x up)."""
    G, M, k, d = s.kv_heads, s.experts_per_group, s.top_k, s.d
    gm, gk = n * G * M, n * G * k
    ks = []
    if fp32_router:
        if not a.autocast:
            ks.append(mem("router x to fp32", "layer", n * d * BF16, n * d * FP32,
                          [("grad", n * d * FP32, n * d * BF16)]))
        ks += gemm("router (fp32)", "layer", n, G * M, d, kind="gemm_fp32", elem=FP32)
        ks.append(mem("softmax", "layer", gm * FP32, gm * FP32, [("grad", 2 * gm * FP32, gm * FP32)]))
    else:
        ks += linear("router", "layer", n, G * M, d, a)
        if a.autocast:
            ks.append(mem("logits to fp32", "layer", gm * BF16, gm * FP32, [("grad", gm * FP32, gm * BF16)]))
        ks.append(mem("softmax", "layer", gm * FP32, gm * FP32, [("grad", 2 * gm * FP32, gm * FP32)]))
    ks += [
        mem("top-k (CUDA kernel)", "layer", gm * FP32, gk * INT64),
        mem("gather selected p", "layer", gk * INT64 + gm * FP32, gk * FP32,
            [("zeros", 0, gm * FP32), ("scatter_add", gk * (INT64 + FP32), gk * FP32)]),
        mem("renormalise sum", "layer", gk * FP32, n * FP32, [("expand", n * FP32, gk * FP32)]),
        mem("renormalise clamp", "layer", n * FP32, n * FP32, [("grad", 2 * n * FP32, n * FP32)]),
        mem("renormalise div", "layer", gk * FP32 + n * FP32, gk * FP32,
            [("grad num", 2 * gk * FP32, gk * FP32), ("grad den", 3 * gk * FP32, n * FP32)]),
        mem("aux zeros_like", "layer", 0, gm * FP32),
        mem("aux scatter_", "layer", gk * INT64, gk * FP32),
        mem("aux mean f", "layer", gm * FP32, G * M * FP32),
        mem("aux mean P", "layer", gm * FP32, G * M * FP32, [("expand", 0, gm * FP32)]),
    ]
    for op in ["f*P", "sum", "*M", "mean"]:
        ks.append(mem("aux " + op, "layer", G * M * FP32, G * M * FP32, [("grad", G * M * FP32, G * M * FP32)]))
    ks.append(accumulate("layer", gm, 1, FP32))  # probs: the selected gather and the aux loss
    return ks


def sort_kernels(rows, a):
    per = a.sort_passes * 2 * rows * (INT64 + INT64) / a.sort_launches
    return [mem("sort slots by expert %d" % i, "layer", per / 2, per / 2) for i in range(a.sort_launches)]


def routed_query_grouped(s, n, a, offsets_on_host):
    """grouped_query_projection: expert ids, stable sort, counts by bincount (its min and max come to the
    host: two syncs) or offsets on the device (searchsorted), the x rows gathered (and cast under autocast),
    the weight cast, one grouped GEMM, index_copy back to slot order."""
    G, k, d, dh, N = s.kv_heads, s.top_k, s.d, s.head_dim, s.heads
    rows, act = n * G * k, activation_bytes(a)
    ks = [mem("expert ids arange", "layer", 0, G * INT64), mem("expert ids mul", "layer", G * INT64, G * INT64),
          mem("expert ids add", "layer", rows * INT64, rows * INT64)]
    ks += sort_kernels(rows, a)
    if offsets_on_host:
        ks += [mem("bincount min", "layer", rows * INT64, INT64), sync("bincount min to host", "layer"),
               mem("bincount max", "layer", rows * INT64, INT64), sync("bincount max .item()", "layer"),
               mem("bincount zeros", "layer", 0, N * INT64),
               mem("bincount histogram", "layer", rows * INT64, N * INT64)]
    else:
        ks += [mem("offsets arange", "layer", 0, N * INT64),
               mem("offsets searchsorted", "layer", N * 20 * INT64, N * INT64)]
    ks.append(mem("token of slot (div)", "layer", rows * INT64, rows * INT64))
    ks.append(mem("gather x rows (index_select)", "layer", rows * (d * act + INT64), rows * d * act,
                  [("zeros", 0, n * d * act), ("index_add", rows * (d * act + INT64), rows * d * act)]))
    if a.autocast:
        ks.append(mem("x rows to bf16", "layer", rows * d * FP32, rows * d * BF16,
                      [("grad", rows * d * BF16, rows * d * FP32)]))
        ks.append(mem("expert weights to bf16", "layer", N * d * dh * FP32, N * d * dh * BF16,
                      [("grad", N * d * dh * BF16, N * d * dh * FP32)]))
    if offsets_on_host:
        ks.append(mem("offsets cumsum", "layer", N * INT64, N * INT64))
    ks.append(mem("offsets to int32", "layer", N * INT64, N * FP32))
    f = 2.0 * rows * d * dh
    g = Kernel("routed Q grouped GEMM", "layer", "grouped", f, BF16 * (rows * d + N * d * dh + rows * dh),
               (rows, dh, d))
    g.backward = [Kernel("routed Q grouped GEMM dX", "layer", "grouped", f, BF16 * (rows * dh + N * d * dh + rows * d),
                         (rows, d, dh)),
                  Kernel("routed Q grouped GEMM dW", "layer", "grouped", f, BF16 * (rows * dh + rows * d + N * d * dh),
                         (N * d, dh, rows // N))]
    ks.append(g)
    ks.append(mem("index_copy to slot order", "layer", rows * (dh * BF16 + INT64), rows * dh * BF16,
                  [("index_select", rows * (dh * BF16 + INT64), rows * dh * BF16)]))
    return ks


def routed_query_dense(s, n, a):
    """All M experts of every group projected (GQA's Q GEMM), then the selected heads gathered."""
    G, k, d, dh, N = s.kv_heads, s.top_k, s.d, s.head_dim, s.heads
    rows = n * G * k
    return linear("Q projection, all experts", "layer", n, N * dh, d, a) + [
        mem("gather selected heads", "layer", rows * (dh * BF16 + INT64), rows * dh * BF16,
            [("zeros", 0, n * N * dh * BF16), ("scatter_add", rows * (dh * BF16 + INT64), rows * dh * BF16)])]


def mean_kv(s, n, label):
    G, dh = s.kv_heads, s.head_dim
    return mem("mean %s over the G heads" % label, "core", n * G * dh * BF16, n * dh * BF16,
               [("expand /G", n * dh * BF16, n * G * dh * BF16), ("add", 2 * n * G * dh * BF16, n * G * dh * BF16)])


def append_mean_head(s, n, label):
    """[K | mean K] as G + 1 KV heads: a copy of size (G + 1)/G of K; its backward is two views."""
    G, dh = s.kv_heads, s.head_dim
    return mem("cat %s with its mean head" % label, "core", n * (G + 1) * dh * BF16, n * (G + 1) * dh * BF16)


def slots(s, n):
    """kernels::gqe_slots_reference: w * slots, the sum over slots, a cast, the cat of W_O's input."""
    rows, dh = n * s.kv_heads * s.top_k, s.head_dim
    return [
        mem("slots w*o", "layer", rows * (dh * BF16 + FP32), rows * dh * FP32,
            [("grad o", rows * (dh * FP32 + FP32), rows * dh * BF16),
             ("grad w mul", 2 * rows * dh * FP32, rows * dh * FP32), ("grad w sum", rows * dh * FP32, rows * FP32)]),
        mem("slots sum", "layer", rows * dh * FP32, n * dh * FP32),
        mem("slots cast", "layer", n * dh * FP32, n * dh * BF16, [("grad", n * dh * BF16, n * dh * FP32)]),
        mem("slots cat", "layer", n * s.slots * dh * BF16, n * s.slots * dh * BF16),
        accumulate("layer", rows * dh, 1),  # the hard slots feed both the cat and the weighted sum
    ]


# ----------------------------------------------------------------------------------------------------------
# Layers

def gqa_layer(s, n, a, rope_mode):
    d, dh, N, G = s.d, s.head_dim, s.heads, s.kv_heads
    ks = [accumulate("layer", n * d, 2, activation_bytes(a))]  # x feeds Q, K and V
    ks += linear("K projection", "layer", n, G * dh, d, a) + linear("V projection", "layer", n, G * dh, d, a)
    ks += rope(rope_mode, "K", n, G, dh)
    ks += linear("Q projection", "layer", n, N * dh, d, a)
    ks += rope(rope_mode, "Q", n, N, dh)
    ks += flash("SDPA %d q heads over %d KV heads" % (N, G), "core", n, N, G, dh)
    ks += linear("W_O", "layer", n, d, N * dh, a, x_fp32=False)
    return ks


def gqe_before_layer(s, n, a):
    d, dh, G, k = s.d, s.head_dim, s.kv_heads, s.top_k
    ks = [accumulate("layer", n * d, 4, activation_bytes(a))]  # x feeds K, V, the router, the routed and the shared Q
    ks += linear("K projection", "layer", n, G * dh, d, a) + linear("V projection", "layer", n, G * dh, d, a)
    ks += rope("plain", "K", n, G, dh)
    ks += routing(s, n, a, fp32_router=False)
    ks += routed_query_grouped(s, n, a, offsets_on_host=True)
    ks += rope("plain", "Q slots", n, G * k, dh)
    ks += linear("shared Q projection", "layer", n, dh, d, a)
    ks += rope("plain", "shared Q", n, 1, dh)
    ks += [mean_kv(s, n, "K"), mean_kv(s, n, "V")]
    ks += flash("SDPA %d slot heads over %d KV heads" % (G * k, G), "core", n, G * k, G, dh)
    ks += flash("SDPA shared head over the mean K/V", "core", n, 1, 1, dh)
    ks += slots(s, n)
    ks += linear("W_O", "layer", n, d, s.slots * dh, a, x_fp32=False)
    return ks


def gqe_after_layer(s, n, a, projection, layout):
    """projection: "dense" (all experts, gather) or "grouped" (sort, device offsets); layout: "one call"
    (k = 1: G + 1 heads as MHA), "padded" (k > 1: the shared query repeated k times against the mean head)
    or "two calls" (the slot heads with enable_gqa, the shared head alone)."""
    d, dh, G, k = s.d, s.head_dim, s.kv_heads, s.top_k
    ks = [accumulate("layer", n * d, 4, activation_bytes(a))]  # x feeds K, V, the router, the routed and the shared Q
    ks += linear("K projection", "layer", n, G * dh, d, a) + linear("V projection", "layer", n, G * dh, d, a)
    ks += rope("cached", "K", n, G, dh)
    ks += routing(s, n, a, fp32_router=True)
    ks += routed_query_dense(s, n, a) if projection == "dense" else routed_query_grouped(s, n, a, offsets_on_host=False)
    ks += linear("shared Q projection", "layer", n, dh, d, a)
    if layout == "two calls":
        ks += rope("cached", "Q slots", n, G * k, dh) + rope("cached", "shared Q", n, 1, dh)
        ks += [mean_kv(s, n, "K"), mean_kv(s, n, "V")]
        ks += flash("SDPA %d slot heads over %d KV heads" % (G * k, G), "core", n, G * k, G, dh)
        ks += flash("SDPA shared head over the mean K/V", "core", n, 1, 1, dh)
    else:
        q_heads = G * k + k  # the shared query k times (k - 1 of them wasted) when k > 1
        ks.append(mem("cat Q slots with the shared Q", "core", n * (G * k + 1) * dh * BF16, n * q_heads * dh * BF16,
                      [("sum shared copies", n * k * dh * BF16, n * dh * BF16)] if k > 1 else []))
        ks += rope("cached", "Q (slots and shared)", n, q_heads, dh)
        ks += [mean_kv(s, n, "K"), append_mean_head(s, n, "K"), mean_kv(s, n, "V"), append_mean_head(s, n, "V")]
        ks += flash("SDPA %d q heads over %d KV heads" % (q_heads, G + 1), "core", n, q_heads, G + 1, dh)
    ks += slots(s, n)
    ks += linear("W_O", "layer", n, d, s.slots * dh, a, x_fp32=False)
    return ks


def gqe_fused_layer(s, n, a):
    """What-if beyond *after* (k = 1): the small ops fused into one custom kernel each, as the CPU path's
    fused_routing and gqe_slots already are: routing after the router GEMM; the gather of the selected heads,
    their cat with the shared query and RoPE; RoPE of K with the mean head appended; V with its mean head;
    the slots. Backward: one kernel of the same kind each."""
    d, dh, G, k, M, N = s.d, s.head_dim, s.kv_heads, s.top_k, s.experts_per_group, s.heads
    gm, gk, rows = n * G * M, n * G * k, n * G * k
    kv, kv_ext, table = n * G * dh * BF16, n * (G + 1) * dh * BF16, n * dh * BF16
    q_ext = n * (G * k + 1) * dh * BF16
    ks = [accumulate("layer", n * d, 4, activation_bytes(a))]
    ks += linear("K projection", "layer", n, G * dh, d, a) + linear("V projection", "layer", n, G * dh, d, a)
    if not a.autocast:
        ks.append(mem("router x to fp32", "layer", n * d * BF16, n * d * FP32, [("grad", n * d * FP32, n * d * BF16)]))
    ks += gemm("router (fp32)", "layer", n, G * M, d, kind="gemm_fp32", elem=FP32)
    ks.append(mem("fused routing", "layer", gm * FP32, gm * FP32 + gk * (INT64 + FP32),
                  [("grad", gm * FP32 * 2 + gk * INT64, gm * FP32)]))
    ks += linear("Q projection, all experts", "layer", n, N * dh, d, a)
    ks += linear("shared Q projection", "layer", n, dh, d, a)
    ks.append(mem("gather + cat + RoPE Q", "layer", rows * (dh * BF16 + INT64) + table, q_ext,
                  [("grad", q_ext + table + rows * INT64, n * (N + 1) * dh * BF16)]))
    ks.append(mem("RoPE K + mean head appended", "core", kv + table, kv_ext, [("grad", kv_ext + table, kv)]))
    ks.append(mem("V + mean head appended", "core", kv, kv_ext, [("grad", kv_ext, kv)]))
    ks += flash("SDPA %d q heads over %d KV heads" % (G + 1, G + 1), "core", n, G + 1, G + 1, dh)
    ks.append(mem("fused slots", "layer", rows * (dh * BF16 + FP32) + n * dh * BF16, n * s.slots * dh * BF16,
                  [("grad", n * s.slots * dh * BF16 + rows * dh * BF16, rows * (dh * BF16 + FP32) + n * dh * BF16)]))
    ks += linear("W_O", "layer", n, d, s.slots * dh, a, x_fp32=False)
    return ks


def rms_norm(label, n, d, a):
    """Norm::forward: x * rsqrt(mean(x^2) + eps) * weight, six kernels on the residual stream's dtype."""
    x = n * d * activation_bytes(a)
    return [accumulate("block", n * d, 2, activation_bytes(a)),
            mem(label + " pow", "block", x, x, [("grad", 2 * x, x)]),
            mem(label + " mean", "block", x, n * FP32, [("expand", n * FP32, x)]),
            mem(label + " add eps", "block", n * FP32, n * FP32),
            mem(label + " rsqrt", "block", n * FP32, n * FP32, [("grad", 2 * n * FP32, n * FP32)]),
            mem(label + " mul", "block", x + n * FP32, x, [("grad x", x, x), ("grad r", 2 * x, n * FP32)]),
            mem(label + " weight", "block", x, x, [("grad x", x, x), ("grad w", 2 * x, d * FP32)])]


def mlp_rows(s, rows, a, label=""):
    d, f = s.d, s.mlp
    h = rows * f * BF16
    return ([accumulate("block", rows * d, 1, activation_bytes(a))] +
            linear("MLP gate" + label, "block", rows, f, d, a) + linear("MLP up" + label, "block", rows, f, d, a) +
            [mem("MLP silu" + label, "block", h, h, [("grad", 2 * h, h)]),
             mem("MLP mul" + label, "block", 2 * h, h, [("grad gate", 2 * h, h), ("grad up", 2 * h, h)])] +
            linear("MLP down" + label, "block", rows, d, f, a, x_fp32=False))


def block(s, n, layer, a, train):
    """DecoderLayer: h + attn(norm(h)), then + mlp(norm(.)); inference splits the MLP in row chunks."""
    d, act = s.d, activation_bytes(a)
    residual = mem("residual add", "block", n * d * (act + BF16), n * d * act)
    ks = [accumulate("block", n * d, 2, act)] + rms_norm("attn norm", n, d, a) + layer + [residual]
    ks += rms_norm("MLP norm", n, d, a)
    if train or n <= 2 * a.mlp_chunk_rows:
        ks += mlp_rows(s, n, a)
    else:
        for start in range(0, n, a.mlp_chunk_rows):
            rows = min(a.mlp_chunk_rows, n - start)
            ks += mlp_rows(s, rows, a, " chunk")
            ks.append(mem("MLP chunk copy", "block", rows * d * BF16, rows * d * BF16))
    ks.append(residual)
    return ks


# ----------------------------------------------------------------------------------------------------------
# Time

@functools.lru_cache(maxsize=None)
def flash_makespan_tiles(n, heads, backward, sms, tile):
    """Makespan, in tile times, of a causal flash call on `sms` SMs: its CTAs dispatched in launch order to
    the first free SM. Forward: one CTA per (head, query block), query blocks ascending, block i doing i + 1
    key tiles. Backward: one CTA per (head, key block), key block j doing the blocks - j query tiles."""
    blocks = -(-n // tile)
    free = [0] * min(sms, heads * blocks)
    heapq.heapify(free)
    work = range(blocks, 0, -1) if backward else range(1, blocks + 1)
    for _ in range(heads):
        for w in work:
            heapq.heappush(free, heapq.heappop(free) + w)
    return max(free)


def gemm_utilisation(dims, a, sms):
    """The share of SMs a GEMM keeps busy: output tiles in waves; below one wave, split-K where deep enough."""
    rows, cols, depth = dims
    tiles = -(-rows // a.gemm_tile) * -(-cols // a.gemm_tile)
    splits = range(1, max(1, depth // a.split_k_min_depth) + 1) if tiles < sms else [1]
    return max(tiles * sk / (-(-tiles * sk // sms) * sms) for sk in splits)


def kernel_seconds(k, gpu, a):
    memory = k.bytes / (gpu.hbm_bytes_per_s * a.bandwidth_efficiency)
    if k.kind in ("flash", "flash_bwd"):
        n, heads, _, dh = k.dims
        bwd = k.kind == "flash_bwd"
        rate = gpu.bf16_flops * (a.flash_bwd_efficiency if bwd else a.flash_fwd_efficiency)
        if a.flash_by_tiles:
            tile_flops = (2.5 if bwd else 1.0) * 4.0 * a.flash_tile * a.flash_tile * dh
            compute = flash_makespan_tiles(n, heads, bwd, gpu.sms, a.flash_tile) * tile_flops / (rate / gpu.sms)
        else:
            compute = k.flops / rate
    elif k.kind == "gemm":
        compute = k.flops / (gpu.bf16_flops * a.gemm_efficiency * gemm_utilisation(k.dims, a, gpu.sms))
    elif k.kind == "grouped":
        compute = k.flops / (gpu.bf16_flops * a.grouped_gemm_efficiency * gemm_utilisation(k.dims, a, gpu.sms))
    elif k.kind == "gemm_fp32":
        compute = k.flops / (gpu.fp32_flops * a.fp32_gemm_efficiency * gemm_utilisation(k.dims, a, gpu.sms))
    else:
        compute = 0.0
    return max(compute, memory, a.kernel_min_s) + a.kernel_gap_s


def gpu_busy(kernels, gpu, a):
    """The GPU's own time for a layer's kernels, launches and syncs aside."""
    return sum(kernel_seconds(k, gpu, a) for k in kernels if k.kind not in ("none", "sync"))


def launched(kernels):
    return [k for k in kernels if k.kind != "none"]


def training_order(kernels):
    """Forward, then every kernel's backward in reverse order of the forward."""
    out = [k for k in kernels if k.kind != "none"]
    for k in reversed(kernels):
        out += k.backward
    return out


def timeline(kernels, gpu, a):
    """Seconds from the first launch until the last kernel ends: the host issues launches back to back
    (the GPU runs ahead or waits for them) and stops at each sync until the GPU has drained."""
    host = device = 0.0
    for k in kernels:
        if k.kind == "none":
            continue
        if k.kind == "sync":
            host = max(host, device) + a.sync_s
            continue
        host += a.launch_s
        device = max(device, host) + kernel_seconds(k, gpu, a)
    return max(host, device)


@dataclasses.dataclass
class Layer:
    kernels: list
    note: str = ""


def design(name, s, n, a, train=False, gpu=None):
    """The layer's kernels for a design; "gqe-after" picks its projection and layout by modelled time."""
    if name == "gqa-before":
        return Layer(gqa_layer(s, n, a, "plain"))
    if name == "gqa-after":
        return Layer(gqa_layer(s, n, a, "cached"))
    if name == "gqe-before":
        return Layer(gqe_before_layer(s, n, a))
    if name == "gqe-fused":
        return Layer(gqe_fused_layer(s, n, a))
    assert name == "gqe-after", name
    layouts = ["one call"] if s.top_k == 1 else ["two calls", "padded"]
    best = None
    for projection in ["dense", "grouped"]:
        for layout in layouts:
            ks = gqe_after_layer(s, n, a, projection, layout)
            order = training_order(ks) if train else ks
            t = timeline(order, gpu or GPUS[0], a)
            if best is None or t < best[0]:
                best = (t, Layer(ks, "%s, %s" % (projection, layout)))
    return best[1]


def level_kernels(kernels, level):
    return [k for k in kernels if k.level in LEVELS[level]]


def predict(name, s, n, gpu, a, level="layer", train=False):
    layer = design(name, s, n, a, train, gpu)
    ks = layer.kernels
    if level == "block":
        ks = block(s, n, ks, a, train)
    ks = level_kernels(ks, level)
    return timeline(training_order(ks) if train else ks, gpu, a), layer.note


def work(kernels, train=False):
    ks = training_order(kernels) if train else launched(kernels)
    return (sum(k.flops for k in ks), sum(k.bytes for k in ks),
            sum(1 for k in ks if k.kind != "sync"), sum(1 for k in ks if k.kind == "sync"))


def ideal_flop_ratio(s, n, level):
    """GQA over GQE FLOPs with only the routed experts' Q computed (fast-gqe-design.md's table)."""
    d, dh, N, G, k = s.d, s.head_dim, s.heads, s.kv_heads, s.top_k

    def flops(q_heads, slots, router):
        f = 4.0 * q_heads * dh * n * (n + 1) / 2.0
        if level != "core":
            f += n * (2 * d * 2 * G * dh + 2 * d * q_heads * dh + 2 * slots * dh * d + 2 * d * router)
        if level == "block":
            f += n * 3 * 2 * d * s.mlp
        return f
    return flops(N, N, 0) / flops(G * k + 1, s.slots, N)


# ----------------------------------------------------------------------------------------------------------
# Markdown

def fmt_time(t):
    if t < 1e-3:
        return "%.0f us" % (t * 1e6)
    if t < 1.0:
        return "%.3g ms" % (t * 1e3)
    return "%.3g s" % t


def fmt_count(x):
    return "{:,.0f}".format(x) if x >= 100 else "%.3g" % x


def fmt_n(n):
    return "%dM" % (n >> 20) if n >= 1 << 20 else "%dk" % (n >> 10)


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def ratio(a_time, b_time):
    return "%.2f" % (a_time / b_time)


def crossover(s, gpu, a, train=False):
    """The smallest power-of-two token count (256 .. 1M) at which sort + grouped GEMM beats dense + gather."""
    for e in range(8, 21):
        n = 1 << e
        ts = {}
        for projection in ["dense", "grouped"]:
            layout = "one call" if s.top_k == 1 else "two calls"
            ks = gqe_after_layer(s, n, a, projection, layout)
            ts[projection] = timeline(training_order(ks) if train else ks, gpu, a)
        if ts["grouped"] < ts["dense"]:
            return n
    return None


def projection_costs(s, n, gpu, a):
    """Modelled time of each routed-projection option on its own (its kernels back to back)."""
    dense = sum(kernel_seconds(k, gpu, a) for k in routed_query_dense(s, n, a))
    grouped = sum(kernel_seconds(k, gpu, a) for k in launched(routed_query_grouped(s, n, a, False)))
    return dense, grouped


def markdown(a=BASE):
    s, h100 = PAPER, GPUS[0]
    lines = []
    names = ["gqa-before", "gqe-before", "gqa-after", "gqe-after"]
    label = {"gqa-before": "GQA before", "gqe-before": "GQE before", "gqa-after": "GQA after", "gqe-after": "GQE after"}

    def wrap(text, **indent):
        # No line break inside "k = 2", "d_h 64" or "160 us": a wrapped "= 2" would start a line.
        glued = re.sub(r"(\d) (us|ms|s|KB|MB|TB/s|TFLOP/s)\b", "\\1\u00a0\\2",
                       text.replace(" = ", "\u00a0=\u00a0").replace("d_h ", "d_h\u00a0"))
        return [l.replace("\u00a0", " ") for l in textwrap.wrap(glued, WIDTH, break_on_hyphens=False, **indent)]

    def para(text):
        lines.extend(wrap(text) + [""])

    def bullets(items):
        for text in items:
            lines.extend(wrap(text, initial_indent="- ", subsequent_indent="  "))
        lines.append("")

    def heading(text):
        lines.extend([text, ""])

    def add_table(header, rows):
        lines.extend(table(header, rows) + [""])

    heading("## Cost model")
    para("**A model, not a measurement**: no GPU has run gqe yet. Predicted per-layer time of GQA and GQE attention "
         "on an H100 SXM and an H200, for the CUDA path as it was (*before*) and as it is being reshaped (*after*). "
         "This section is the output of `python3 scripts/gpu-cost-model.py --markdown` (Python 3 standard library), "
         "byte for byte; CTest `gpu_cost_model` checks that. `--kernels gqe-after --n 4096 --gpu h100 [--train]` "
         "lists one layer's kernels with their FLOPs, bytes and modelled times.")
    para("Shape: the paper's (`configs/paper-gqe-16-8-1.json`): d %d, %s, d_h %d, SwiGLU width %d; bf16 compute "
         "under autocast, batch 1, causal prefill unless said. Ratios are GQA time / GQE time (above 1: GQE faster)."
         % (s.d, s.describe(), s.head_dim, s.mlp))

    heading("### The designs")
    desc = {
        "gqa-before": "Q, K, V projections; RoPE on Q and K as plain ops (17 kernels a call: angles recomputed in "
                      "double, x1*cos - x2*sin, x2*cos + x1*sin, a cat); one SDPA call (16 q heads over 8 KV heads, "
                      "`enable_gqa`); W_O",
        "gqe-before": "K, V projections; routing (router linear, softmax, top-k kernel, gather, renormalise, "
                      "load-balancing loss); routed Q by sort + `bincount` (its min and max go to the host: 2 syncs) "
                      "+ x rows gathered + one `_grouped_mm` + `index_copy`; plain RoPE on K, the slot queries and the "
                      "shared query; the mean K and V; two SDPA calls (8 slot heads over 8 KV heads; the shared head "
                      "over the mean); the slots (product, sum, cast, cat); W_O",
        "gqa-after": "as before, with RoPE one kernel per call from cached cos/sin tables",
        "gqe-after": "router in fp32 (no autocast cast); routed Q by the dense projection of all M experts + a "
                     "gather, or sort + grouped GEMM with offsets on the device (no sync), whichever the model "
                     "finds cheaper; slot and shared queries concatenated, RoPE once (cached); the mean K/V "
                     "appended to K and V as a 9th KV head (a copy of 9/8 of K and V); ONE SDPA call, 9 query heads "
                     "over 9 KV heads (MHA); slots and W_O as before",
    }
    rows = []
    for name in names:
        _, _, launches, syncs = work(design(name, s, 4096, a).kernels)
        rows.append([label[name], str(launches), str(syncs), desc[name]])
    add_table(["design", "launches", "syncs", "what runs (per layer, prefill; counts do not depend on n)"], rows)
    para("Launches include autocast's casts (each bf16 linear casts its fp32 weight, and its input when that is "
         "fp32). *before* and *after* differ for GQA too (RoPE), so each ratio compares GQA and GQE in the same "
         "state. " + projection_summary(a))

    heading("### Assumptions")
    para("All in `GPUS` and `Assumptions` at the top of the script:")
    items = ["%s: %.0f TFLOP/s bf16 dense, %.0f TFLOP/s fp32 (no TF32: libtorch's matmul default), %.2f TB/s, "
             "%d SMs (NVIDIA datasheets)." % (g.name, g.bf16_flops / 1e12, g.fp32_flops / 1e12,
                                              g.hbm_bytes_per_s / 1e12, g.sms) for g in GPUS]
    items += [
        "A kernel lasts max(FLOPs / achievable FLOP/s, bytes / achievable bandwidth, %.1f us) + %.1f us of idle GPU "
        "between kernels. The host issues a launch every %.1f us (libtorch dispatch + `cudaLaunchKernel`); the GPU "
        "runs ahead of the host or waits for it. A host sync costs %.0f us after the GPU has drained. A layer's "
        "time ends with its last kernel."
        % (a.kernel_min_s * 1e6, a.kernel_gap_s * 1e6, a.launch_s * 1e6, a.sync_s * 1e6),
        "Flash attention (SDPA's flash backend), steady state: %.0f%% of the bf16 peak forward, %.0f%% backward. "
        "FlashAttention-2 (Dao 2023) reports 50-73%% of an A100's peak forward; FlashAttention-3 (Shah et al. 2024) "
        "up to 75%% of an H100's at d_h 128-256 and less at d_h 64; libtorch's in-tree flash kernels are FA2-class "
        "(no wgmma/TMA), well below half the H100 peak at d_h 64. The sensitivity table varies this."
        % (a.flash_fwd_efficiency * 100, a.flash_bwd_efficiency * 100),
        "A flash call is timed by its tiles: %d query rows x %d keys, causal (query block i does i + 1 key tiles; "
        "in the backward key block j does the rest), CTAs taken in launch order (blocks ascending, head after "
        "head) by the first free SM. Few heads at short n leave SMs idle: there 9 heads lose part of their edge "
        "over 16, and one head alone is slow. Attention's HBM traffic: Q, K, V, O and the log-sum-exp once."
        % (a.flash_tile, a.flash_tile),
        "GEMMs (cuBLAS bf16): %.0f%% of peak times the share of SMs the %dx%d output tiles keep busy (split-K below "
        "one wave where the depth allows). Grouped GEMM (`_grouped_mm`): %.0f%%. fp32 GEMM: %.0f%% of the fp32 peak."
        % (a.gemm_efficiency * 100, a.gemm_tile, a.gemm_tile, a.grouped_gemm_efficiency * 100,
           a.fp32_gemm_efficiency * 100),
        "Memory-bound kernels (elementwise, casts, copies, gathers, reductions, sorts): %.0f%% of the HBM "
        "bandwidth, every byte counted once (no L2 reuse across kernels). Sort: CUB radix sort of int64 keys with "
        "their indices, %d passes, %d launches." % (a.bandwidth_efficiency * 100, a.sort_passes, a.sort_launches),
        "Autocast, as gqe runs on CUDA: fp32 residual stream and master weights; every bf16 linear casts its "
        "weight (once per forward) and its fp32 input (every time). The sensitivity table has a pure-bf16 model.",
        "Training (forward + backward): each GEMM's backward is two GEMMs of its FLOPs; flash backward 2.5x the "
        "forward FLOPs plus FA2's dO.O and dQ-convert kernels and, with more query than KV heads, the sums of "
        "dK/dV over each group; elementwise ops' backward kernels as autograd runs them; gradient accumulation "
        "adds where a tensor is used twice. No optimizer step.",
        "Block: the two RMSNorms as plain ops (6 kernels each), two residual adds and the SwiGLU MLP (inference "
        "splits it into chunks of %d rows above %d tokens, as `MLP::forward` does)."
        % (a.mlp_chunk_rows, 2 * a.mlp_chunk_rows),
        "Not modelled: allocator calls, L2 hits, clocks under power limits, other SDPA backends (cuDNN, "
        "memory-efficient), concurrent kernels, the KV cache (prefill from empty).",
    ]
    bullets(items)

    heading("### Work per layer")
    para("FLOPs, HBM traffic and the FLOP ratio of the attention layer, prefill (GPU-independent):")
    rows = []
    for n in LENGTHS:
        fl, by = [], []
        for name in ["gqa-after", "gqe-before", "gqe-after"]:
            f, b, _, _ = work(design(name, s, n, a).kernels)
            fl.append(f)
            by.append(b)
        rows.append([fmt_n(n)] + [fmt_count(f / 1e9) for f in fl] + [fmt_count(b / 1e6) for b in by] +
                    ["%.2f" % (fl[0] / fl[2]), "%.2f" % ideal_flop_ratio(s, n, "layer")])
    add_table(["n", "GFLOP GQA", "GFLOP GQE before", "GFLOP GQE after", "MB GQA", "MB GQE before", "MB GQE after",
               "FLOP ratio after", "routed-only"], rows)
    para("GQA's traffic is with cached RoPE. GQE *after* computes the queries of all M experts, so its FLOP ratio "
         "is below the routed-only one of `fast-gqe-design.md`; the routed projection below says why that is the "
         "cheaper choice.")

    for g in GPUS:
        heading("### Predicted time per layer: %s" % g.name)
        rows = []
        for n in LENGTHS:
            t = {(name, level): predict(name, s, n, g, a, level)[0] for name in names for level in LEVELS}
            r = [fmt_n(n)] + [fmt_time(t[name, "layer"]) for name in names]
            for level in LEVELS:
                r.append("%s → %s (%.2f)" % (ratio(t["gqa-before", level], t["gqe-before", level]),
                                             ratio(t["gqa-after", level], t["gqe-after", level]),
                                             ideal_flop_ratio(s, n, level)))
            rows.append(r)
        add_table(["n"] + [label[name] for name in names] +
                  ["%s before → after (limit)" % level for level in LEVELS], rows)
    para("Times are per attention layer. Core: attention alone (the SDPA calls, the mean K/V, the concatenations); "
         "layer: the attention layer; block: + norms, MLP and residual adds. The limit in brackets is the FLOP "
         "ratio with only the routed experts computed, 16/9 = 1.78 at core.")

    heading("### Training (forward + backward), per layer")
    rows = []
    for n in LENGTHS[:4]:
        r = [fmt_n(n)]
        for g in GPUS:
            t = {(name, level): predict(name, s, n, g, a, level, train=True)[0]
                 for name in names for level in ["layer", "block"]}
            r += [fmt_time(t["gqa-after", "layer"]), fmt_time(t["gqe-after", "layer"]),
                  "%s → %s" % (ratio(t["gqa-before", "layer"], t["gqe-before", "layer"]),
                               ratio(t["gqa-after", "layer"], t["gqe-after", "layer"])),
                  ratio(t["gqa-after", "block"], t["gqe-after", "block"])]
        rows.append(r)
    header = ["n"]
    for g in GPUS:
        k = g.key.upper()
        header += ["%s GQA after" % k, "%s GQE after" % k, "%s layer before → after" % k, "%s block after" % k]
    add_table(header, rows)

    s2 = PAPER_K2
    heading("### k = 2: %s" % s2.describe())
    para("GQE *after* picks, per n, two SDPA calls (%d slot heads over %d KV heads with `enable_gqa`, then the "
         "shared head alone) or one padded call (%d query heads over %d KV heads: the shared query %d times against "
         "the mean head, %d wasted), whichever the model finds cheaper. Prefill:"
         % (s2.top_k * s2.kv_heads, s2.kv_heads, s2.top_k * (s2.kv_heads + 1), s2.kv_heads + 1, s2.top_k,
            s2.top_k - 1))
    rows = []
    for n in LENGTHS:
        r = [fmt_n(n)]
        for g in GPUS:
            t = {(name, level): predict(name, s2, n, g, a, level) for name in names for level in ["core", "layer"]}
            for level in ["core", "layer"]:
                r.append("%s → %s" % (ratio(t["gqa-before", level][0], t["gqe-before", level][0]),
                                      ratio(t["gqa-after", level][0], t["gqe-after", level][0])))
            r.append(t["gqe-after", "layer"][1].split(", ")[1])
        rows.append(r)
    header = ["n"]
    for g in GPUS:
        k = g.key.upper()
        header += ["%s core before → after" % k, "%s layer before → after" % k, "%s call layout" % k]
    add_table(header, rows)

    heading("### Routed Q projection: dense + gather or sort + grouped GEMM")
    para("Each option's kernels back to back (no launch overhead), prefill, paper shape:")
    rows = []
    for g in GPUS:
        for n in [4096, 65536, 1048576]:
            dense, grouped = projection_costs(s, n, g, a)
            rows.append([g.key.upper(), fmt_n(n), fmt_time(dense), fmt_time(grouped)])
    add_table(["GPU", "n", "dense + gather", "sort + grouped GEMM (no sync)"], rows)
    cross = {(g.key, train): crossover(s, g, a, train) for g in GPUS for train in [False, True]}
    if not any(cross.values()):
        verdict = ("**No crossover from 256 tokens to 1M**, on either GPU, in prefill or training: the dense "
                   "projection wins at every n. ")
    else:
        verdict = "Crossover (the smallest power of two from 256 at which the grouped path wins): " + ", ".join(
            "%s %s %s" % (g.key.upper(), "training" if train else "prefill",
                          fmt_n(cross[g.key, train]) if cross[g.key, train] else "none up to 1M")
            for g in GPUS for train in [False, True]) + ". "
    para(verdict +
         "The grouped path is memory-bound: `index_select` copies each token's x row G·k = %d times (%d KB a token "
         "in %s, written and read again, plus its cast), and a grouped GEMM with %d output columns does %d FLOPs per "
         "byte of x it reads, below the ~%.0f an H100 needs to be compute-bound. The dense GEMM reads x once and "
         "wastes M/k = %d times the routed FLOPs, which costs less. The grouped path would need the gather inside "
         "the GEMM's operand loads and x rows reused across the G groups, or a much larger d_h."
         % (s.kv_heads * s.top_k, s.kv_heads * s.top_k * s.d * activation_bytes(a) // 1024,
            "fp32" if a.autocast else "bf16", s.head_dim, s.head_dim,
            h100.bf16_flops * a.gemm_efficiency / (h100.hbm_bytes_per_s * a.bandwidth_efficiency),
            s.experts_per_group))

    heading("### Beyond *after*: what closes the gap at short n")
    after_2k, after_4k = (design("gqe-after", s, n, a).kernels for n in [2048, 4096])
    launches = work(after_4k)[2]
    para("*After* pays for its %d launches twice at 2k-4k: the host needs %s to issue them, more than the GPU's "
         "%s of work at 2k (%s at 4k), and each small kernel still costs the GPU at least %.1f us. "
         % (launches, fmt_time(launches * a.launch_s), fmt_time(gpu_busy(after_2k, h100, a)),
            fmt_time(gpu_busy(after_4k, h100, a)), (a.kernel_min_s + a.kernel_gap_s) * 1e6) +
         "What-if rows (not designs in progress): *fused* is *after* with routing, the Q gather + cat + RoPE, each "
         "K/V with its mean head, and the slots one custom kernel each (%d launches), as the CPU path's "
         "`fused_routing` and `gqe_slots` already are; *graph* also replays the layer as a CUDA graph (host time "
         "per launch 0.3 us, GQA likewise). Layer ratio GQA / GQE, prefill:"
         % work(design("gqe-fused", s, 4096, a).kernels)[2])
    graph = dataclasses.replace(a, launch_s=0.3e-6)
    lengths = [2048, 4096, 16384, 65536]
    rows = []
    for row_label, name, v in [("after", "gqe-after", a), ("fused", "gqe-fused", a),
                               ("fused + graph", "gqe-fused", graph)]:
        rows.append([row_label] + [ratio(predict("gqa-after", s, n, g, v)[0], predict(name, s, n, g, v)[0])
                                   for g in GPUS for n in lengths])
    add_table(["GQE"] + ["%s %s" % (g.key.upper(), fmt_n(n)) for g in GPUS for n in lengths], rows)
    gqa_core = predict("gqa-after", s, 4096, h100, a, "core")[0]
    gqa_layer_time = predict("gqa-after", s, 4096, h100, a, "layer")[0]
    para("Even fused, GQE stays near GQA at 2k-4k at batch 1. Outside attention, the layer (projections, where GQE "
         "computes as many Q FLOPs as GQA; RoPE; autocast's casts) is %.0f%% of GQA's layer time at 4k on an H100, "
         "and the 9-head SDPA call fills the SMs worse than the 16-head one. SDPA alone at 4k, by tiles: %s. The "
         "paper's 1.67x at 4k is above the layer's FLOP limit there (%.2f): it is a core-level figure or one against "
         "a GQA slower than this model's; at core level the model reaches it at 4k only with a few sequences per "
         "call."
         % (100 * (1 - gqa_core / gqa_layer_time),
            ", ".join("%.2f at batch %d" % (sdpa_ratio(s, 4096, b, h100, a), b) for b in [1, 2, 4, 8]),
            ideal_flop_ratio(s, 4096, "layer")))

    heading("### Sensitivity (H100, attention layer, prefill, *after*)")
    variants = [("as assumed", a),
                ("flash 30% fwd / 22% bwd",
                 dataclasses.replace(a, flash_fwd_efficiency=0.30, flash_bwd_efficiency=0.22)),
                ("flash 60% fwd / 45% bwd",
                 dataclasses.replace(a, flash_fwd_efficiency=0.60, flash_bwd_efficiency=0.45)),
                ("launch 3 us", dataclasses.replace(a, launch_s=3e-6)),
                ("launch 8 us", dataclasses.replace(a, launch_s=8e-6)),
                ("flash timed by FLOPs alone (no idle SMs)", dataclasses.replace(a, flash_by_tiles=False)),
                ("pure bf16 (no autocast casts)", dataclasses.replace(a, autocast=False))]
    rows = [[row_label] + [ratio(predict("gqa-after", s, n, h100, v)[0], predict("gqe-after", s, n, h100, v)[0])
                           for n in lengths] for row_label, v in variants]
    add_table(["assumption changed"] + [fmt_n(n) for n in lengths], rows)

    heading("### What the first GPU run must confirm")
    core_4k = predict("gqa-after", s, 4096, h100, a, "core")[0] / predict("gqe-after", s, 4096, h100, a, "core")[0]
    bullets([
        "The SDPA backend each call takes (flash, cuDNN, memory-efficient) for 16 q / 8 KV heads with `enable_gqa` "
        "and for 9 / 9 heads MHA, in bf16 and fp32: the model assumes the same flash kernel for both. GQA and GQE "
        "must be timed on the same backend, named.",
        "The achieved flash TFLOP/s (from the causal FLOPs) at 16 and at 9 heads, batch 1, n 4k..64k: the model's "
        "core ratio at 4k (%.2f on an H100) rests on how 9 x 32 CTAs fill 132 SMs against 16 x 32." % core_4k,
        "The host time per launch and the GPU gaps (Nsight Systems, or the layer timed eagerly and as a CUDA "
        "graph): at 2k-4k they, not FLOPs, decide the ratio.",
        "The routed projection, dense + gather against sort + grouped GEMM, at 4k, 64k and 1M (the model finds "
        "no crossover), and that no layer syncs (`torch.cuda.set_sync_debug_mode` or Nsight).",
        "That appending the mean head costs a memory-bound copy of 9/8 of K and V and nothing more (no "
        "`contiguous()` inside SDPA for the strided views).",
        "The backward: FA2's dK/dV group sums for GQA (absent for MHA) and the mean head's gradient spread back "
        "over the G heads.",
        "The small-kernel floor: routing (%d kernels before, %d after) and the slots (%d) cost more at 2k-4k if a "
        "tiny kernel takes 5 us of GPU time rather than the modelled %.1f us."
        % (len(launched(routing(s, 4096, a, False))), len(launched(routing(s, 4096, a, True))),
           len(launched(slots(s, 4096))), (a.kernel_min_s + a.kernel_gap_s) * 1e6),
    ])
    return "\n".join(lines).rstrip("\n") + "\n"


def sdpa_ratio(s, n, batch, gpu, a):
    """GQA's SDPA call over GQE's one call, flash tiles only, `batch` sequences per call (batch-major CTAs
    behave as more heads)."""
    gqa = flash_makespan_tiles(n, s.heads * batch, False, gpu.sms, a.flash_tile)
    gqe = flash_makespan_tiles(n, (s.kv_heads * s.top_k + s.top_k) * batch, False, gpu.sms, a.flash_tile)
    return gqa / gqe


def projection_summary(a):
    """Which routed projection and call layout *after* takes, in words, from the model's own choices."""
    words = {"dense": "dense + gather", "grouped": "sort + grouped GEMM"}
    by_choice = {}
    for s in [PAPER, PAPER_K2]:
        chosen = {design("gqe-after", s, n, a, train, g).note.split(", ")[0]
                  for g in GPUS for n in LENGTHS for train in [False, True]}
        by_choice.setdefault(" or ".join(words[c] for c in sorted(chosen)), []).append("k = %d" % s.top_k)
    return ("GQE *after* takes the routed projection the model finds cheaper: %s, at every n, on both GPUs, in "
            "prefill and training; its launch count is that variant's."
            % "; ".join("%s for %s" % (c, " and ".join(ks)) for c, ks in by_choice.items()))


# ----------------------------------------------------------------------------------------------------------

def list_kernels(name, n, gpu_key, train, a=BASE):
    gpu = next(g for g in GPUS if g.key == gpu_key)
    layer = design(name, PAPER, n, a, train, gpu)
    ks = training_order(layer.kernels) if train else launched(layer.kernels)
    print("%s, n %d, %s%s%s" % (name, n, gpu.name, ", forward + backward" if train else ", prefill",
                               " (" + layer.note + ")" if layer.note else ""))
    print("%-48s %-6s %12s %12s %10s" % ("kernel", "level", "MFLOP", "MB", "us"))
    for k in ks:
        t = "sync" if k.kind == "sync" else "%.1f" % (kernel_seconds(k, gpu, a) * 1e6)
        print("%-48s %-6s %12.1f %12.3f %10s" % (k.name[:48], k.level, k.flops / 1e6, k.bytes / 1e6, t))
    f, b, launches, syncs = work(layer.kernels, train)
    print("total: %.4g GFLOP, %.4g MB, %d launches, %d syncs, %s" % (f / 1e9, b / 1e6, launches, syncs,
                                                                   fmt_time(timeline(ks, gpu, a))))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--markdown", action="store_true", help="print the Cost model section of docs/gpu.md")
    p.add_argument("--kernels", choices=["gqa-before", "gqe-before", "gqa-after", "gqe-after", "gqe-fused"],
                   help="list one layer's kernels")
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--gpu", choices=[g.key for g in GPUS], default="h100")
    p.add_argument("--train", action="store_true", help="forward + backward")
    args = p.parse_args(argv)
    if args.kernels:
        list_kernels(args.kernels, args.n, args.gpu, args.train)
    elif args.markdown:
        sys.stdout.write(markdown())
    else:
        p.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
