"""The CUDA path's ops (a package built with GQE_CUDA: csrc/cuda_path_ops.cpp) and the modules on that path.

Every piece but the top-k is aten around SDPA and runs on any device, so without a GPU the tests run them on
CPU tensors against the reference twins, as the gqe command's suite does with GQE_ATTENTION_PATH=cuda; the
modules are put on the path with `gqe.modules.attention_path_override`. On a GPU the last tests also run the
modules on CUDA tensors against the CPU reference. Skipped where the package was built without the CUDA path.
"""
import pytest
import torch

import gqe
from gqe import modules, ops

from test_modules import case_id, model_config, module_for

pytestmark = pytest.mark.skipif(not ops.has_cuda_path(), reason="the package was built without GQE_CUDA")

# SDPA's CPU kernels compute in fp32, in another order than the float64 reference; largest gaps measured at
# these sizes: 4.3e-7 (outputs), 2.2e-6 (gradients). The same bounds as the fast CPU kernels' (test_ops.py).
ATOL, RTOL = 1e-5, 1e-4


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


@pytest.mark.parametrize("B,Tq,Tk,Hq,G,d_h,q_start", [(2, 37, 37, 6, 2, 24, 0), (1, 5, 41, 4, 4, 16, 36),
                                                      (3, 1, 19, 8, 2, 32, 18)])
def test_sdpa_attention_matches_float64_reference(B, Tq, Tk, Hq, G, d_h, q_start):
    q, k, v, dout = rand(B, Tq, Hq, d_h), rand(B, Tk, G, d_h), rand(B, Tk, G, d_h), rand(B, Tq, Hq, d_h)
    l64 = [t.clone().requires_grad_() for t in (q, k, v)]
    ref = ops.flash_attention_reference(*l64, q_start)
    ref.backward(dout)
    l32 = [t.float().requires_grad_() for t in (q, k, v)]
    out = ops.sdpa_attention(*l32, q_start)
    out.backward(dout.float())
    torch.testing.assert_close(out.double(), ref.detach(), atol=ATOL, rtol=RTOL)
    for a, b in zip(l32, l64):
        torch.testing.assert_close(a.grad.double(), b.grad, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("k", [1, 2])
def test_sdpa_slots_and_shared_equals_two_reference_attentions(k):
    """One SDPA call for the slot heads and the shared head (the mean K/V appended as a KV head) against the
    reference's two: slot heads over the G heads, the shared head over their mean."""
    B, T, G, d_h = 2, 23, 3, 16
    q, qs, keys, values = rand(B, T, G * k, d_h), rand(B, T, 1, d_h), rand(B, T, G, d_h), rand(B, T, G, d_h)
    d_slots, d_shared = rand(B, T, G * k, d_h), rand(B, T, 1, d_h)
    l64 = [t.clone().requires_grad_() for t in (q, qs, keys, values)]
    slots_ref = ops.flash_attention_reference(l64[0], l64[2], l64[3], 0)
    shared_ref = ops.flash_attention_reference(l64[1], l64[2].mean(2, keepdim=True), l64[3].mean(2, keepdim=True), 0)
    ((slots_ref * d_slots).sum() + (shared_ref * d_shared).sum()).backward()
    l32 = [t.float().requires_grad_() for t in (q, qs, keys, values)]
    slots, shared = ops.sdpa_slots_and_shared(*l32, 0)
    ((slots * d_slots.float()).sum() + (shared * d_shared.float()).sum()).backward()
    torch.testing.assert_close(slots.double(), slots_ref.detach(), atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(shared.double(), shared_ref.detach(), atol=ATOL, rtol=RTOL)
    for a, b in zip(l32, l64):
        torch.testing.assert_close(a.grad.double(), b.grad, atol=ATOL, rtol=RTOL)


def test_route_top_k_breaks_ties_by_the_lower_index():
    probs = torch.tensor([[0.1, 0.4, 0.4, 0.1], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.05, 0.15]])
    assert ops.route_top_k(probs, 2).tolist() == [[1, 2], [0, 1], [0, 3]]
    p = torch.rand(4, 9, 3, 5).softmax(-1)
    assert torch.equal(ops.route_top_k(p, 3), p.topk(3, dim=-1).indices)  # distinct values: topk's order


@pytest.mark.parametrize("k", [1, 2])
def test_route_equals_route_reference(k):
    logits = rand(2, 11, 3, 4)
    d = [rand(2, 11, 3, k), rand(2, 11, 3, k), rand(())]
    outs = []
    for fn in (ops.route, ops.route_reference):
        leaf = logits.clone().requires_grad_()
        probs, selected, sp, w, aux = fn(leaf, k, 1e-9)
        ((sp * d[0]).sum() + (w * d[1]).sum() + aux * d[2]).backward()
        outs.append((probs, selected, sp, w, aux, leaf.grad))
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_route_top_k_passes_opcheck():
    torch.library.opcheck(torch.ops.gqe.route_top_k, (torch.rand(2, 5, 3, 4), 2))


CONFIGS = [model_config("gqa"), model_config("gqe"), model_config("gqe", top_k=2),
           model_config("gqe", variant="hard_concat"), model_config("gqe", variant="weighted_concat", top_k=2)]


def on_cuda_path(monkeypatch):
    monkeypatch.setattr(modules, "attention_path_override", "cuda")


@pytest.mark.parametrize("config", CONFIGS, ids=case_id)
def test_module_on_the_cuda_path_matches_the_reference_path(config, monkeypatch):
    block = module_for(config)
    x = torch.randn(2, 19, config["hidden_size"])
    grad_y = torch.randn_like(x)

    def run(implementation):
        block.implementation = implementation
        block.zero_grad()
        xin = x.clone().requires_grad_()
        y, aux = block(xin)
        ((y * grad_y).sum() + 0.7 * aux).backward()
        return [y, aux, xin.grad] + [p.grad.clone() for p in block.parameters()]

    ref = run("reference")
    on_cuda_path(monkeypatch)
    cuda_path = run("fast")
    for a, b in zip(cuda_path, ref):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)


def test_module_on_the_cuda_path_compiles_fullgraph(monkeypatch):
    on_cuda_path(monkeypatch)
    torch._dynamo.reset()
    block = module_for(model_config("gqe"))
    x = torch.randn(2, 17, 48)
    y, aux = torch.compile(block, fullgraph=True)(x)
    y_eager, aux_eager = block(x)
    torch.testing.assert_close(y, y_eager, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(aux, aux_eager, atol=ATOL, rtol=RTOL)


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")


@gpu
@pytest.mark.parametrize("config", CONFIGS, ids=case_id)
def test_module_on_a_gpu_matches_the_cpu_reference(config):
    """fp32 on the GPU (SDPA's kernels, gqe's top-k kernel) against the CPU reference path: outputs and
    gradients; TF32 is off so that the GEMMs are fp32."""
    torch.backends.cuda.matmul.allow_tf32 = False
    block = module_for(config)
    x = torch.randn(2, 64, config["hidden_size"])
    grad_y = torch.randn_like(x)
    results = []
    for device, implementation in (("cpu", "reference"), ("cuda", "fast")):
        b = module_for(config).to(device)
        b.load_state_dict(block.state_dict())
        b.implementation = implementation
        xin = x.to(device).requires_grad_()
        y, aux = b(xin)
        ((y * grad_y.to(device)).sum() + 0.7 * aux).backward()
        results.append([t.cpu() for t in [y, aux, xin.grad] + [p.grad for p in b.parameters()]])
    for a, b in zip(results[1], results[0]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@gpu
def test_whole_model_runs_on_a_gpu_in_bf16():
    config = dict(model_config("gqe"), vocab_size=64, num_hidden_layers=2)
    model = gqe.GQEForCausalLM(config).cuda()
    tokens = torch.randint(0, 64, (2, 40), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, aux = model(tokens)
    assert logits.shape == (2, 40, 64) and torch.isfinite(logits).all()
