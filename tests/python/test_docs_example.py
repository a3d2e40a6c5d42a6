"""docs/python.md's training example, run as it stands in the page (fewer steps), so that the documented
example cannot drift from the package."""
import contextlib
import io
import os
import re

from conftest import REPO, RUN_TEXT

MARKER = "<!-- example: train -->"


def example_source():
    page = (REPO / "docs" / "python.md").read_text()
    assert MARKER in page, f"docs/python.md lost its marker {MARKER}"
    block = re.search(r"```python\n(.*?)```", page[page.index(MARKER):], re.S)
    return block.group(1)


def test_the_training_example_runs_and_learns(tmp_path, monkeypatch):
    source = example_source()
    assert "range(201)" in source and '"text.txt"' in source, "the test edits these two places of the example"
    (tmp_path / "text.txt").write_text(RUN_TEXT)
    source = source.replace("range(201)", "range(51)").replace(
        'open("configs/tiny-gqe.json")', f'open({str(REPO / "configs" / "tiny-gqe.json")!r})')
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "docs/python.md example", "exec"), {})
    losses = [float(line.split()[1]) for line in out.getvalue().splitlines()]
    assert len(losses) == 2, out.getvalue()  # steps 0 and 50
    assert losses[1] < losses[0] - 1.0, f"the loss did not fall: {losses}"
