"""The ops one by one: the reference ops' gradients (gradcheck, float64), the fast fp32 kernels against the
float64 reference (outputs and gradients, odd sizes), and torch.library.opcheck of every fast op (schema,
fake implementation, autograd registration, tracing by AOTAutograd)."""
import pytest
import torch

from gqe import ops

# The fast kernels compute in fp32; the reference runs in float64 on the same (fp32-representable) unit-normal
# inputs. The largest gap measured at these sizes is 2.9e-6 (dv of flash attention at T = 37; outputs
# 5e-7); the bounds leave a margin of ~3x and stay far below what a real error moves (a wrong mask, head
# mapping or rotation changes results by ~1e-1).
FP32_ATOL = 1e-5
FP32_RTOL = 1e-4


def rand(*shape, dtype=torch.float64, requires_grad=False):
    return torch.randn(*shape, dtype=dtype).requires_grad_(requires_grad)


# Odd sizes on purpose: lengths that are not multiples of any tile, several heads per group.
ATTENTION_CASES = [
    # B, Tq, Tk, Hq, G, d_h, q_start
    (2, 37, 37, 6, 2, 24, 0),
    (1, 5, 41, 4, 4, 16, 36),   # chunked prefill: queries at positions 36..40
    (3, 1, 19, 8, 2, 32, 18),   # one decode position
    (1, 70, 70, 3, 1, 10, 0),   # MQA, d_h not a multiple of 8
]


@pytest.mark.parametrize("B,Tq,Tk,Hq,G,d_h,q_start", ATTENTION_CASES)
def test_flash_attention_fast_matches_float64_reference(B, Tq, Tk, Hq, G, d_h, q_start):
    q, k, v = rand(B, Tq, Hq, d_h), rand(B, Tk, G, d_h), rand(B, Tk, G, d_h)
    dout = rand(B, Tq, Hq, d_h)
    leaves64 = [t.clone().requires_grad_() for t in (q, k, v)]
    ref = ops.flash_attention_reference(*leaves64, q_start)
    ref.backward(dout)
    leaves32 = [t.float().requires_grad_() for t in (q, k, v)]
    out = ops.flash_attention(*leaves32, q_start)
    out.backward(dout.float())
    torch.testing.assert_close(out.double(), ref.detach(), atol=FP32_ATOL, rtol=FP32_RTOL)
    for fast, slow in zip(leaves32, leaves64):
        torch.testing.assert_close(fast.grad.double(), slow.grad, atol=FP32_ATOL, rtol=FP32_RTOL)


def test_rope_fast_matches_float64_reference():
    x = rand(2, 13, 3, 10)
    dout = rand(2, 13, 3, 10)
    for start in (0, 7):
        x64 = x.clone().requires_grad_()
        ref = ops.rope_reference(x64, start, 10000.0)
        ref.backward(dout)
        x32 = x.float().requires_grad_()
        out = ops.rope(x32, start, 10000.0)
        out.backward(dout.float())
        torch.testing.assert_close(out.double(), ref.detach(), atol=FP32_ATOL, rtol=FP32_RTOL)
        torch.testing.assert_close(x32.grad.double(), x64.grad, atol=FP32_ATOL, rtol=FP32_RTOL)


def routed_inputs(B=2, T=11, d=40, G=2, M=3, k=2, d_h=12):
    x = rand(B, T, d)
    weight = rand(G * M * d_h, d) * 0.2
    selected = torch.stack([torch.randperm(M)[:k] for _ in range(B * T * G)]).view(B, T, G, k)
    return x, weight, selected, M, d_h


def test_routed_query_projection_fast_matches_float64_reference():
    x, weight, selected, M, d_h = routed_inputs()
    G, k = selected.shape[2], selected.shape[3]
    dout = rand(x.shape[0], x.shape[1], G * k, d_h)
    x64, w64 = x.clone().requires_grad_(), weight.clone().requires_grad_()
    ref = ops.routed_query_projection_reference(x64, w64, selected, M, d_h)
    ref.backward(dout)
    x32, w32 = x.float().requires_grad_(), weight.float().requires_grad_()
    out = ops.routed_query_projection(x32, w32, selected, M, d_h)
    out.backward(dout.float())
    torch.testing.assert_close(out.double(), ref.detach(), atol=FP32_ATOL, rtol=FP32_RTOL)
    torch.testing.assert_close(x32.grad.double(), x64.grad, atol=FP32_ATOL, rtol=FP32_RTOL)
    torch.testing.assert_close(w32.grad.double(), w64.grad, atol=FP32_ATOL, rtol=FP32_RTOL)


def test_narrow_projection_fast_matches_float64_reference():
    x, weight, dout = rand(2, 13, 40), rand(12, 40) * 0.2, rand(2, 13, 1, 12)
    x64, w64 = x.clone().requires_grad_(), weight.clone().requires_grad_()
    ref = ops.narrow_projection_reference(x64, w64)
    ref.backward(dout)
    x32, w32 = x.float().requires_grad_(), weight.float().requires_grad_()
    out = ops.narrow_projection(x32, w32)
    out.backward(dout.float())
    torch.testing.assert_close(out.double(), ref.detach(), atol=FP32_ATOL, rtol=FP32_RTOL)
    torch.testing.assert_close(x32.grad.double(), x64.grad, atol=FP32_ATOL, rtol=FP32_RTOL)
    torch.testing.assert_close(w32.grad.double(), w64.grad, atol=FP32_ATOL, rtol=FP32_RTOL)


def test_gqe_slots_fast_matches_float64_reference():
    B, T, G, k, d_h = 2, 9, 3, 2, 14
    slots, weights, shared = rand(B, T, G * k, d_h), rand(B, T, G, k).softmax(-1), rand(B, T, 1, d_h)
    dout = rand(B, T, (G * k + 2) * d_h)
    l64 = [t.clone().requires_grad_() for t in (slots, weights, shared)]
    ref = ops.gqe_slots_reference(*l64)
    ref.backward(dout)
    l32 = [t.float().requires_grad_() for t in (slots, weights, shared)]
    out = ops.gqe_slots(*l32)
    out.backward(dout.float())
    torch.testing.assert_close(out.double(), ref.detach(), atol=FP32_ATOL, rtol=FP32_RTOL)
    for fast, slow in zip(l32, l64):
        torch.testing.assert_close(fast.grad.double(), slow.grad, atol=FP32_ATOL, rtol=FP32_RTOL)


@pytest.mark.parametrize("k", [1, 2])
def test_fused_routing_fast_matches_float64_reference(k):
    B, T, G, M = 2, 23, 3, 4
    logits = rand(B, T, G, M)
    d_sp, d_w, d_aux = rand(B, T, G, k), rand(B, T, G, k), rand(())
    l64 = logits.clone().requires_grad_()
    probs, sel, sp, w, aux = ops.route_reference(l64, k, 1e-9)
    ((sp * d_sp).sum() + (w * d_w).sum() + aux * d_aux).backward()
    l32 = logits.float().requires_grad_()
    probs32, sel32, sp32, w32, aux32 = ops.fused_routing(l32, k, 1e-9)
    ((sp32 * d_sp.float()).sum() + (w32 * d_w.float()).sum() + aux32 * d_aux.float()).backward()
    assert torch.equal(sel32, sel)
    for fast, slow in ((probs32, probs), (sp32, sp), (w32, w), (aux32, aux), (l32.grad, l64.grad)):
        torch.testing.assert_close(fast.double(), slow.detach(), atol=FP32_ATOL, rtol=FP32_RTOL)


def test_reference_ops_gradcheck_float64():
    q, k, v = rand(1, 6, 4, 6, requires_grad=True), rand(1, 9, 2, 6, requires_grad=True), rand(1, 9, 2, 6, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, k, v: ops.flash_attention_reference(q, k, v, 3), (q, k, v))
    x = rand(2, 5, 3, 8, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ops.rope_reference(x, 4, 10000.0), (x,))
    xr, weight, selected, M, d_h = routed_inputs(B=1, T=4, d=6, G=2, M=3, k=2, d_h=4)
    xr.requires_grad_(), weight.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, w: ops.routed_query_projection_reference(x, w, selected, M, d_h), (xr, weight))
    xn, wn = rand(1, 4, 6, requires_grad=True), rand(3, 6, requires_grad=True)
    assert torch.autograd.gradcheck(ops.narrow_projection_reference, (xn, wn))
    s, w, sh = rand(1, 3, 4, 5, requires_grad=True), rand(1, 3, 2, 2, requires_grad=True), rand(1, 3, 1, 5, requires_grad=True)
    assert torch.autograd.gradcheck(ops.gqe_slots_reference, (s, w, sh))
    logits = rand(1, 5, 2, 3, requires_grad=True)
    assert torch.autograd.gradcheck(lambda l: ops.route_reference(l, 2, 1e-9)[2:], (logits,))


def test_fast_ops_pass_opcheck():
    f = torch.float32
    q, k, v = rand(1, 7, 4, 8, dtype=f, requires_grad=True), rand(1, 7, 2, 8, dtype=f, requires_grad=True), \
        rand(1, 7, 2, 8, dtype=f, requires_grad=True)
    torch.library.opcheck(torch.ops.gqe.flash_attention_forward, (q, k, v, 0))
    out, lse = torch.ops.gqe.flash_attention_forward(q.detach(), k.detach(), v.detach(), 0)
    torch.library.opcheck(torch.ops.gqe.flash_attention_backward,
                          (q.detach(), k.detach(), v.detach(), out, lse, torch.randn_like(out), 0))
    torch.library.opcheck(torch.ops.gqe.rope, (rand(1, 5, 2, 8, dtype=f, requires_grad=True), 3, 10000.0))
    x, weight, selected, M, d_h = routed_inputs(B=1, T=5, d=8, G=2, M=2, k=1, d_h=4)
    torch.library.opcheck(torch.ops.gqe.routed_query_projection,
                          (x.float().requires_grad_(), weight.float().requires_grad_(), selected, M, d_h))
    torch.library.opcheck(torch.ops.gqe.narrow_projection, (rand(1, 5, 8, dtype=f, requires_grad=True),
                                                            rand(4, 8, dtype=f, requires_grad=True)))
    torch.library.opcheck(torch.ops.gqe.gqe_slots, (rand(1, 3, 4, 5, dtype=f, requires_grad=True),
                                                    rand(1, 3, 2, 2, dtype=f, requires_grad=True),
                                                    rand(1, 3, 1, 5, dtype=f, requires_grad=True)))
    torch.library.opcheck(torch.ops.gqe.fused_routing, (rand(1, 5, 2, 3, dtype=f, requires_grad=True), 2, 1e-9))


def test_fast_ops_refuse_what_they_cannot_run():
    q = rand(1, 3, 2, 4)  # float64
    with pytest.raises(RuntimeError, match="fp32 only"):
        ops.flash_attention(q, q, q, 0)


def test_rope_after_inference_mode_still_trains():
    """The kernel keeps angle tables between calls: one formed under torch.inference_mode (generation, evaluation)
    must not be an inference tensor that a later training step cannot save for its backward."""
    with torch.inference_mode():
        ops.rope(torch.randn(1, 6, 2, 8), 0, 2345.0)
    x = torch.randn(1, 6, 2, 8, requires_grad=True)
    ops.rope(x, 0, 2345.0).sum().backward()
    assert x.grad is not None
