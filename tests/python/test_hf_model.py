"""The Hugging Face model (python/gqe_hf/modeling_gqe.py, what `gqe export --format hf` writes) on its two
attention paths: "eager" (plain PyTorch, the reference the interop checks compare with gqe) and "gqe_ops"
(the gqe package's blocks). Ops path against eager path (logits, loss, aux loss, every gradient, and through
the KV cache); config.attention_implementation decides which path runs ("auto" by the call, a pinned value
always); without the package the model runs eager, in this process and in a fresh interpreter."""
import json
import os
import shutil
import subprocess
import sys
import types

import pytest
import torch

from conftest import REPO

pytest.importorskip("transformers")

HF_SOURCES = REPO / "python" / "gqe_hf"
sys.path.insert(0, str(HF_SOURCES))  # imported as the top-level modules an export folder's files are
import modeling_gqe  # noqa: E402
from configuration_gqe import GqeConfig  # noqa: E402

VOCAB, B, T = 64, 2, 21


def hf_config(kind="gqe", variant="gqe", top_k=1, **overrides):
    fields = dict(vocab_size=VOCAB, hidden_size=48, num_hidden_layers=2, intermediate_size=64, attention_kind=kind,
                  num_attention_heads=8, num_key_value_heads=4, head_dim=16, top_k_per_group=top_k,
                  gqe_variant=variant)
    return GqeConfig(**dict(fields, **overrides))


def hf_model(config):
    model = modeling_gqe.GqeForCausalLM(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, modeling_gqe.GqeAttention) and hasattr(module, "router"):
                # A zero router routes every token alike; N(0, 1) (as the interop tests use) makes routing
                # matter and keeps the top-k choices far from ties, so both paths pick the same experts.
                module.router.weight.normal_(0, 1)
    return model


CASES = [("gqa", "gqe", 1), ("gqe", "gqe", 1), ("gqe", "gqe", 2), ("gqe", "hard_concat", 1),
         ("gqe", "weighted_concat", 2)]


def case_id(case):
    kind, variant, top_k = case
    return "gqa" if kind == "gqa" else f"{variant}-k{top_k}"


def gqe_ops_called(fn):
    """(fn's result, the names of the torch.ops.gqe ops that ran in it): what the profiler recorded."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], acc_events=True) as prof:
        result = fn()
    return result, {e.name for e in prof.events() if e.name.startswith("gqe::")}


def run_path(model, implementation, ids):
    """Loss (with labels: cross-entropy + aux_loss_weight * aux), logits and every parameter's gradient on
    one path, and the logits of the same tokens through the KV cache: a prefill of half, then one at a time."""
    model.config.attention_implementation = implementation
    model.zero_grad()
    out = model(ids, labels=ids, use_cache=False)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        aux = model.model(ids, use_cache=False).aux_loss
        half = ids.shape[1] // 2
        step = model(ids[:, :half], use_cache=True)
        pieces, cache = [step.logits], step.past_key_values
        for t in range(half, ids.shape[1]):
            step = model(ids[:, t:t + 1], past_key_values=cache, use_cache=True)
            pieces.append(step.logits)
    return out.loss.detach(), out.logits.detach(), aux, grads, torch.cat(pieces, dim=1)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gqe_ops_path_equals_eager_path(case):
    kind, variant, top_k = case
    model = hf_model(hf_config(kind, variant, top_k))
    ids = torch.randint(0, VOCAB, (B, T))
    loss_e, logits_e, aux_e, grads_e, cached_e = run_path(model, "eager", ids)
    loss_o, logits_o, aux_o, grads_o, cached_o = run_path(model, "gqe_ops", ids)
    # Measured over these cases: logits within 2.1e-7 of the largest logit (2.6e-7 through the cache, on
    # either path), loss and aux loss bitwise equal, gradients within 1.7e-6 of each tensor's largest entry,
    # except the routers' (up to 4.4e-5 at k = 2, variant gqe): their small entries are differences of nearly
    # equal terms (the renormalised weights), off by at most 3.2e-10 absolute. Summation order only: the
    # paths compute the same function (the same experts, the same slots).
    torch.testing.assert_close(logits_o, logits_e, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(cached_o, logits_e, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(cached_e, logits_e, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(loss_o, loss_e, atol=0, rtol=1e-6)
    torch.testing.assert_close(aux_o, aux_e, atol=1e-7, rtol=1e-6)
    for name, g in grads_e.items():
        assert g.abs().max() > 0, name  # every parameter takes part on the eager path ...
        scale = float(grads_e[name].abs().max())
        # ... and gets the same gradient on the ops path: within 1e-5 of the tensor's largest entry, or
        # 2e-9 absolute (the routers' cancellations above)
        torch.testing.assert_close(grads_o[name], g, atol=max(1e-5 * scale, 2e-9), rtol=1e-5,
                                   msg=lambda m: f"{name}: {m}")


def test_pinned_path_is_what_runs():
    model = hf_model(hf_config())
    ids = torch.randint(0, VOCAB, (B, T))
    expected_ops = {"gqe::fused_routing", "gqe::routed_query_projection", "gqe::flash_attention_forward", "gqe::rope",
                    "gqe::gqe_slots"}
    for implementation, called in (("eager", set()), ("gqe_ops", expected_ops), ("auto", expected_ops)):
        model.config.attention_implementation = implementation
        _, ran = gqe_ops_called(lambda: model(ids))
        assert expected_ops <= ran if called else not ran, (implementation, ran)

    # auto takes gqe's kernels only where they run; elsewhere eager, as pinned eager would.
    model.config.attention_implementation = "auto"
    padded = torch.ones(B, T, dtype=torch.long)
    padded[0, :3] = 0  # left padding: the package's blocks have no key mask
    for call in (lambda: model.double()(ids), lambda: model.float()(ids, attention_mask=padded)):
        _, ran = gqe_ops_called(call)
        assert not ran
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, ran = gqe_ops_called(lambda: model(ids))
    assert not ran

    # Pinned gqe_ops never falls back: what it cannot run is an error.
    model.config.attention_implementation = "gqe_ops"
    with pytest.raises(ValueError, match="padding"):
        model(ids, attention_mask=padded)
    with pytest.raises(ValueError, match="position_ids"):
        model(ids, position_ids=torch.arange(T).flip(0).unsqueeze(0))
    # Another dtype runs the package's reference ops (its own rule), still through its blocks.
    with torch.no_grad():
        model64 = hf_model(hf_config()).double()
        model64.config.attention_implementation = "gqe_ops"
        _, ran = gqe_ops_called(lambda: model64(ids))
        assert "gqe::flash_attention_reference" in ran and "gqe::flash_attention_forward" not in ran
    # generate() passes position_ids; without padding they are the cache positions, so it runs pinned.
    _, ran = gqe_ops_called(lambda: model.generate(ids[:1, :5], max_new_tokens=4, do_sample=False, pad_token_id=0))
    assert expected_ops <= ran

    model.config.attention_implementation = "sdpa"
    with pytest.raises(ValueError, match="attention_implementation"):
        model(ids)
    with pytest.raises(ValueError, match="attention_implementation"):
        hf_config(attention_implementation="fast")


def test_without_the_package_auto_runs_eager(monkeypatch):
    model = hf_model(hf_config())
    ids = torch.randint(0, VOCAB, (B, T))
    model.config.attention_implementation = "eager"
    with torch.no_grad():
        want = model(ids).logits
    # As if gqe were not installed: `import gqe` fails (None in sys.modules), looked up afresh.
    monkeypatch.setitem(sys.modules, "gqe", None)
    monkeypatch.setattr(modeling_gqe, "_gqe", modeling_gqe._NOT_LOOKED_UP)
    model.config.attention_implementation = "auto"
    with torch.no_grad():
        got, ran = gqe_ops_called(lambda: model(ids).logits)
    assert not ran and modeling_gqe.gqe_package() is None
    assert torch.equal(got, want)  # the eager path itself, bitwise
    model.config.attention_implementation = "gqe_ops"
    with pytest.raises(ImportError, match="needs the gqe package"):
        model(ids)
    # A package too old for this file (blocks without a cache) counts as absent.
    class OldAttention(torch.nn.Module):
        def forward(self, x):
            return x

    monkeypatch.setitem(sys.modules, "gqe", types.SimpleNamespace(GQEAttention=OldAttention, __file__="old"))
    monkeypatch.setattr(modeling_gqe, "_gqe", modeling_gqe._NOT_LOOKED_UP)
    assert modeling_gqe.gqe_package() is None and "too old" in str(modeling_gqe._gqe_error)
    model.config.attention_implementation = "auto"
    assert torch.equal(model(ids).logits.detach(), want)
    monkeypatch.undo()
    modeling_gqe._gqe = modeling_gqe._NOT_LOOKED_UP
    assert modeling_gqe.gqe_package() is not None


def save_folder(model, path):
    """A folder like `gqe export --format hf` writes (config with auto_map, safetensors, the modeling files)."""
    model.config.auto_map = {"AutoConfig": "configuration_gqe.GqeConfig",
                             "AutoModelForCausalLM": "modeling_gqe.GqeForCausalLM"}
    model.config.architectures = ["GqeForCausalLM"]
    model.save_pretrained(path)
    for name in ("configuration_gqe.py", "modeling_gqe.py"):
        shutil.copy(HF_SOURCES / name, path / name)
    config = json.loads((path / "config.json").read_text())
    config.pop("attention_implementation", None)  # as gqe export writes it: the field absent, "auto" then
    (path / "config.json").write_text(json.dumps(config))


# A fresh interpreter in which `import gqe` fails, as where the package is not installed: it loads the
# folder through transformers' remote code and writes the logits (auto, which must run eager) to a file.
WITHOUT_GQE = """
import sys, torch
sys.modules["gqe"] = None
from transformers import AutoModelForCausalLM
folder, ids, out = sys.argv[1], torch.load(sys.argv[2]), sys.argv[3]
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()
assert model.config.attention_implementation == "auto"
with torch.no_grad():
    logits = model(ids).logits
    generated = model.generate(ids[:1, :5], max_new_tokens=4, do_sample=False, pad_token_id=0)
modeling = sys.modules[type(model).__module__]
assert modeling.gqe_package() is None, "gqe imported"
torch.save({"logits": logits, "generated": generated}, out)
"""


def test_exported_folder_pins_its_path_and_runs_without_the_package(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "hf"
    model = hf_model(hf_config())
    save_folder(model, folder)
    ids = torch.randint(0, VOCAB, (B, T))
    loaded = {impl: AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32,
                                                          attention_implementation=impl).eval()
              for impl in ("eager", "gqe_ops")}
    default = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    assert default.config.attention_implementation == "auto"
    with torch.no_grad():
        eager, ran = gqe_ops_called(lambda: loaded["eager"](ids).logits)
        assert not ran
        ops, ran = gqe_ops_called(lambda: loaded["gqe_ops"](ids).logits)
        assert "gqe::flash_attention_forward" in ran
        want_generated = loaded["eager"].generate(ids[:1, :5], max_new_tokens=4, do_sample=False, pad_token_id=0)
    torch.testing.assert_close(ops, eager, atol=2e-6, rtol=1e-5)

    torch.save(ids, tmp_path / "ids.pt")
    subprocess.run([sys.executable, "-c", WITHOUT_GQE, str(folder), str(tmp_path / "ids.pt"), str(tmp_path / "out.pt")],
                   check=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                                                     HF_MODULES_CACHE=str(tmp_path / "modules")))
    without = torch.load(tmp_path / "out.pt")
    assert torch.equal(without["logits"], eager)  # the same eager computation in another process
    assert torch.equal(without["generated"], want_generated)
