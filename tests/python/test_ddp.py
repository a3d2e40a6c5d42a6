"""DistributedDataParallel (Gloo, two processes on loopback) around gqe.GQEForCausalLM: optimizer steps on two
ranks, each with half of the global batch, against one process on the whole global batch.

What is equal. DDP averages the ranks' gradients, so a two-rank step follows the gradient of
(L(half 0) + L(half 1)) / 2, where L is model.loss of one forward call: the mean cross-entropy plus, for GQE,
aux_loss_weight times the load-balancing loss, which is computed per forward call from that call's tokens
(M * sum_m f_m * P_m, the product of two means over the call's tokens, averaged over groups and summed over
layers), as `gqe train` computes it per micro-batch.
- The cross-entropy of equal halves averages to the global batch's, and routing is per token, so for GQA
  (and for GQE with aux_loss_weight 0) the two-rank step equals one call on the global batch.
- The load-balancing loss of the global batch is not the mean of the halves' (a product of means is not the
  mean of products), so for GQE with its aux loss the two-rank step equals one process that runs the global
  batch as the same two micro-batches and accumulates their gradients, each loss halved: gradient
  accumulation, which is what `gqe train` does with micro-batches. The test checks that equality, and shows
  that one call on the global batch has another aux loss and so takes another step.

The step is plain SGD, so that parameters after a step differ exactly by lr times the gradients' difference
(Adam's first step, lr * g / (|g| + eps), would magnify the rounding of gradients near zero). Each rank runs
with one thread, as does the one-process reference, computed in rank 0's process. DDP runs with
find_unused_parameters=False and two steps: DDP raises on the second step if a parameter got no gradient in
the first; routers start at zero, as gqe initialises them.

Cost: one spawn of two ranks for all cases, a few seconds; the ranks and the collectives have timeouts, so a
hang fails the test.
"""
import datetime
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD, GLOBAL_BATCH, SEQ, STEPS, LR = 2, 4, 16, 2, 0.5
TIMEOUT_S = 240  # the whole spawn; a hung collective fails the test instead of hanging CI


def config(kind):
    attention = {"kind": kind, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 16}
    if kind == "gqe":
        attention.update(top_k=1, variant="gqe", aux_loss_weight=0.01)
    return {"vocab_size": 64, "hidden_size": 48, "num_hidden_layers": 2, "intermediate_size": 64,
            "max_position_embeddings": 64, "rope_theta": 10000.0, "attention": attention}


# name -> (config, aux_loss_weight): GQE with gqe's default weight, GQE without the aux loss, GQA.
CASES = {"gqe": (config("gqe"), 0.01), "gqe-no-aux": (config("gqe"), 0.0), "gqa": (config("gqa"), 0.0)}


def fresh_model(cfg, aux_loss_weight):
    import gqe

    torch.manual_seed(0)
    model = gqe.GQEForCausalLM(cfg)
    model.aux_loss_weight = aux_loss_weight
    return model


def batches():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 64, (STEPS, GLOBAL_BATCH, SEQ + 1), generator=g)


def loss_of(model, module, tokens):
    """(model.loss of one forward call of `module` on tokens, the call's aux loss)."""
    out = module(tokens[:, :-1])
    return model.loss(out, tokens[:, 1:])[0], out.aux_loss.detach()


def one_process(cfg, aux_loss_weight, micro_batches):
    """Parameters after each SGD step of one process on the global batch, in `micro_batches` calls whose
    losses are averaged (gradient accumulation); and each step's mean aux loss."""
    model = fresh_model(cfg, aux_loss_weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    params, aux = [], []
    for tokens in batches():
        optimizer.zero_grad()
        step_aux = 0.0
        for part in tokens.chunk(micro_batches):
            loss, a = loss_of(model, model, part)
            (loss / micro_batches).backward()
            step_aux += float(a) / micro_batches
        optimizer.step()
        params.append({n: p.detach().clone() for n, p in model.named_parameters()})
        aux.append(step_aux)
    return params, aux


def worker(rank, port, out_dir):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    timeout = datetime.timedelta(seconds=60)
    store = dist.TCPStore("127.0.0.1", port, WORLD, False, timeout=timeout)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=WORLD, timeout=timeout)
    from torch.nn.parallel import DistributedDataParallel as DDP

    results = {}
    half = GLOBAL_BATCH // WORLD
    for name, (cfg, aux_loss_weight) in CASES.items():
        model = fresh_model(cfg, aux_loss_weight)
        ddp = DDP(model, find_unused_parameters=False)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=LR)
        params, aux, without_grad = [], [], set()
        for tokens in batches():
            optimizer.zero_grad(set_to_none=True)
            loss, a = loss_of(model, ddp, tokens[rank * half:(rank + 1) * half])
            loss.backward()
            without_grad |= {n for n, p in model.named_parameters() if p.grad is None}
            optimizer.step()
            params.append({n: p.detach().clone() for n, p in model.named_parameters()})
            aux.append(float(a))
        results[name] = {"params": params, "aux": aux, "without_grad": sorted(without_grad)}
        if rank == 0:
            results[name]["one_call"] = one_process(cfg, aux_loss_weight, 1)
            results[name]["micro_batches"] = one_process(cfg, aux_loss_weight, WORLD)
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """Both ranks' results (DDP parameters after each step, aux losses, parameters without a gradient) and,
    from rank 0, the one-process references; one spawn for all cases."""
    out_dir = tmp_path_factory.mktemp("ddp")
    # The store's server lives here, on a free port the OS picks; the ranks connect to it.
    store = dist.TCPStore("127.0.0.1", 0, None, True, timeout=datetime.timedelta(seconds=60),
                          wait_for_workers=False)
    context = mp.start_processes(worker, args=(store.port, str(out_dir)), nprocs=WORLD, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the DDP ranks did not finish within {TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]


# Measured after each of the two steps (SGD, lr 0.5): against one call on the global batch (GQA, GQE without
# the aux loss), within 3.7e-8 absolute, 6.1e-7 of a tensor's largest entry (the batch's gradient summed in
# one pass against two halves, each summed and then averaged); against the two micro-batches, bitwise equal
# (DDP averages g0/2 + g1/2 as the accumulation does, and halving is exact).
TOL = dict(atol=1e-6, rtol=1e-5)


def assert_params_close(got, want):
    for step, (g, w) in enumerate(zip(got, want)):
        assert g.keys() == w.keys()
        for name in g:
            torch.testing.assert_close(g[name], w[name], **TOL, msg=lambda m: f"step {step}, {name}: {m}")


@pytest.mark.parametrize("case", CASES)
def test_ranks_agree_and_every_parameter_gets_a_gradient(ddp_results, case):
    rank0, rank1 = (r[case] for r in ddp_results)
    assert rank0["without_grad"] == [] and rank1["without_grad"] == []
    for p0, p1 in zip(rank0["params"], rank1["params"]):
        for name in p0:
            assert torch.equal(p0[name], p1[name]), name  # one all-reduced gradient, one step on each rank


@pytest.mark.parametrize("case", ["gqa", "gqe-no-aux"])
def test_two_ranks_equal_one_call_on_the_global_batch(ddp_results, case):
    ddp, ref = ddp_results[0][case], ddp_results[0][case]["one_call"]
    assert_params_close(ddp["params"], ref[0])


def test_gqe_with_aux_loss_equals_the_global_batch_as_two_micro_batches(ddp_results):
    rank0, rank1 = (r["gqe"] for r in ddp_results)
    micro_params, micro_aux = rank0["micro_batches"]
    one_call_params, one_call_aux = rank0["one_call"]
    assert_params_close(rank0["params"], micro_params)
    # The aux loss the step follows is the mean of the halves' (as the micro-batches compute it) ...
    ddp_aux = [(a0 + a1) / 2 for a0, a1 in zip(rank0["aux"], rank1["aux"])]
    assert ddp_aux == pytest.approx(micro_aux, rel=1e-6)
    # ... which is not the global batch's in one call, so that call takes another step. Not at the first
    # step: zero routers send every token to expert 0, f is the same in any batch and so are the aux loss
    # and its gradient; the second step routes by trained routers (measured: aux 2.00162 against 2.00148,
    # parameters apart by up to 8.5e-5, 5% of a router's largest entry).
    assert abs(ddp_aux[-1] - one_call_aux[-1]) > 1e-5 * ddp_aux[-1]
    last = one_call_params[-1]
    assert any(not torch.allclose(rank0["params"][-1][n], last[n], **TOL) for n in last)
