"""The whole model: gqe.load of a run `gqe train` wrote against the CLI's validation loss on the same windows,
and a plain-PyTorch AdamW loop against `gqe train`'s losses from the same initial weights and data."""
import json

import pytest
import torch
import torch.nn.functional as F

import gqe
from conftest import REPO, run_gqe

EVAL_SEQ, EVAL_BATCH = 64, 8


def cli_eval_windows(tokens):
    """gqe eval --val-loss's passes: non-overlapping windows of EVAL_SEQ (every token but the first predicted
    once), batched EVAL_BATCH at a time, never mixing lengths (src/gqe/eval/val_loss.cpp)."""
    starts = range(0, len(tokens) - 1, EVAL_SEQ)
    windows = [(s, min(EVAL_SEQ, len(tokens) - 1 - s)) for s in starts]
    i = 0
    while i < len(windows):
        j = i
        while j < len(windows) and j - i < EVAL_BATCH and windows[j][1] == windows[i][1]:
            j += 1
        yield windows[i:j]
        i = j


@pytest.mark.parametrize("config_name", ["tiny-gqe.json", "tiny-gqa.json"])
@pytest.mark.parametrize("implementation", ["fast", "reference"])
def test_loaded_run_matches_cli_validation_loss(config_name, implementation, trained_run, tmp_path):
    run, text = trained_run(config_name)
    out = tmp_path / "val.json"
    run_gqe("eval", "--val-loss", "--checkpoint", run, "--data", text, "--seq", EVAL_SEQ, "--batch-size", EVAL_BATCH,
            "--threads", "1", "--no-progress", "--out", out)
    cli = json.loads(out.read_text())

    model = gqe.load(run, implementation=implementation)
    assert not model.training
    tokens = torch.tensor(list(text.read_bytes()))  # the byte tokenizer: one token per byte, nothing added
    window_nats, aux = [], []
    with torch.no_grad():
        for batch in cli_eval_windows(tokens):
            x = torch.stack([tokens[s:s + n] for s, n in batch])
            y = torch.stack([tokens[s + 1:s + 1 + n] for s, n in batch])
            logits, aux_loss = model(x)
            nats = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
            window_nats += nats.view(len(batch), -1).double().sum(1).tolist()
            aux.append(aux_loss.item())
    # Measured (GQE and GQA, fast and reference paths): each window's nats within 1.9e-8 relative of the
    # CLI's (the order of fp32 sums), the mean loss within 1e-9, the aux loss bitwise on the fast path and
    # within 9e-9 on the reference path.
    torch.testing.assert_close(torch.tensor(window_nats, dtype=torch.float64),
                               torch.tensor(cli["window_nats"], dtype=torch.float64), rtol=1e-7, atol=0)
    assert sum(window_nats) / cli["predicted_tokens"] == pytest.approx(cli["loss"], rel=1e-8)
    assert sum(aux) / len(aux) == pytest.approx(cli["aux_loss"], rel=1e-7, abs=1e-9)


def test_load_takes_a_checkpoint_folder(trained_run):
    run, _ = trained_run("tiny-gqe.json")
    step = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    final, checkpoint = gqe.load(run).state_dict(), gqe.load(step).state_dict()
    assert final.keys() == checkpoint.keys()
    for name in final:
        assert torch.equal(final[name], checkpoint[name]), name


def test_load_refuses_a_folder_without_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        gqe.load(tmp_path)


def test_forward_returns_logits_and_summed_aux_loss():
    config = json.loads((REPO / "configs" / "tiny-gqe.json").read_text())
    model = gqe.GQEForCausalLM(config)
    for layer in model.layers:  # a zero router routes every token alike; give the routing something to do
        torch.nn.init.normal_(layer.attn.router.weight, 0, 0.5)
    tokens = torch.randint(0, config["vocab_size"], (2, 16))
    logits, aux_loss = model(tokens)
    assert logits.shape == (2, 16, config["vocab_size"])
    h, per_layer = model.embed_tokens(tokens), []
    for layer in model.layers:
        h, a = layer(h)
        per_layer.append(a)
    torch.testing.assert_close(aux_loss, sum(per_layer))
    loss, lm = model.loss(model(tokens), tokens)
    torch.testing.assert_close(loss, lm + config["attention"]["aux_loss_weight"] * aux_loss)


# A text of period 64 bytes cut into windows of 64 tokens: every window, and so every batch, is the same
# whatever order gqe train's seeded permutation visits them in, so a plain loop sees gqe train's data.
PERIODIC_TEXT = ("In the beginning God created the heaven and the earth. And God said"[:64]) * 200
TRAIN_STEPS, TRAIN_LR, TRAIN_BATCH, TRAIN_SEQ = 50, 1e-3, 4, 64
# A constant learning rate with no warmup or decay, no ZClip, no loss-spike skipping: plain AdamW.
PLAIN_RECIPE = ["--batch", TRAIN_BATCH, "--seq", TRAIN_SEQ, "--threads", "1", "--sample-tokens", "0", "--warmup", "0",
                "--decay-fraction", "0", "--no-zclip", "--loss-spike-z", "0"]


def initial_weights(config_name, text, tmp_path):
    """gqe train's initial weights for its default seed: one step at a learning rate of 1e-30 changes no
    weight representable in fp32 but the zero-initialised routers (to +-1e-30, enough to break the routing's
    ties), which are set back to zero."""
    run_gqe("train", "--config", REPO / "configs" / config_name, "--data", text, "--out", tmp_path / "init",
            "--steps", "1", "--lr", "1e-30", "--min-lr", "1e-30", *PLAIN_RECIPE)
    model = gqe.load(tmp_path / "init").train()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("attn.router.weight"):
                p.zero_()
    return model


def adamw_as_gqe_train(model):
    """gqe train's AdamW (src/gqe/train/adamw.h): decay on the projection matrices, not on norms or the
    embedding; betas and eps of recipe.json."""
    decays, rest = [], []
    for name, p in model.named_parameters():
        (decays if p.dim() == 2 and not name.startswith("embed_tokens.") else rest).append(p)
    return torch.optim.AdamW([{"params": decays, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                             lr=TRAIN_LR, betas=(0.9, 0.95), eps=1e-7)


@pytest.mark.parametrize("config_name", ["tiny-gqe.json", "tiny-gqa.json"])
def test_plain_pytorch_training_matches_gqe_train(config_name, tmp_path):
    text = tmp_path / "periodic.txt"
    text.write_text(PERIODIC_TEXT)
    model = initial_weights(config_name, text, tmp_path)
    run_gqe("train", "--config", REPO / "configs" / config_name, "--data", text, "--out", tmp_path / "run",
            "--steps", TRAIN_STEPS, "--lr", TRAIN_LR, "--min-lr", TRAIN_LR, *PLAIN_RECIPE)
    cli_losses = [m["loss"] for m in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
                  if m.get("type") == "train"]

    window = torch.tensor(list(PERIODIC_TEXT.encode()[:TRAIN_SEQ + 1]))
    x, y = window[:-1].expand(TRAIN_BATCH, -1), window[1:].expand(TRAIN_BATCH, -1)
    optimizer = adamw_as_gqe_train(model)
    losses = []
    for _ in range(TRAIN_STEPS):
        optimizer.zero_grad()
        loss, lm = model.loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(lm.item())
    assert losses[-1] < losses[0] - 1.0
    # The first loss is the initial weights' forward (measured: bitwise equal); later ones carry the
    # gradients' differences in summation order (docs/python.md) through AdamW. Measured over the 50 steps:
    # at most 1.0e-6 relative (GQE), 1.4e-6 (GQA).
    assert losses[0] == pytest.approx(cli_losses[0], rel=1e-6)
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(cli_losses), rtol=1e-5, atol=0)


def test_compile_fullgraph_matches_eager(trained_run):
    """The whole model traces without graph breaks and gives eager's loss and gradients."""
    run, _ = trained_run("tiny-gqe.json")
    model = gqe.load(run).train()
    tokens = torch.randint(0, model.config["vocab_size"], (2, 24))
    compiled = torch.compile(model, fullgraph=True)
    results = []
    for m in (model, compiled):
        model.zero_grad()
        loss, _ = model.loss(m(tokens[:, :-1]), tokens[:, 1:])
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-5)
    for compiled_grad, eager_grad in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(compiled_grad, eager_grad, atol=1e-5, rtol=1e-4)


def test_layernorm_gelu_untied_config_has_the_checkpoint_names():
    config = dict(json.loads((REPO / "configs" / "tiny-gqa.json").read_text()), norm_type="layernorm",
                  mlp_type="gelu", tie_word_embeddings=False, num_hidden_layers=1)
    names = set(gqe.GQEForCausalLM(config).state_dict())
    assert {"layers.0.attn_norm.bias", "layers.0.mlp_norm.bias", "norm.bias", "lm_head.weight",
            "layers.0.mlp.up_proj.weight", "layers.0.mlp.down_proj.weight"} <= names
    assert "layers.0.mlp.gate_proj.weight" not in names
    with pytest.raises(ValueError, match="norm_type"):
        gqe.GQEForCausalLM(dict(config, norm_type="batchnorm"))
    with pytest.raises(ValueError, match="mlp_type"):
        gqe.GQEForCausalLM(dict(config, mlp_type="relu"))
