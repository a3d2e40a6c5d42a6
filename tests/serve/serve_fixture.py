"""A tiny run trained by `gqe train` and a `gqe serve` on a free loopback port over it, for the tests that talk to
the server as users do (openai_client_test.py, load_test.py)."""
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void. " * 60


def gqe_bin():
    path = os.environ.get("GQE_BIN") or str(REPO / "build" / "gqe")
    if not Path(path).is_file():
        raise SystemExit("no gqe executable (set GQE_BIN)")
    return path


def train_tiny(work: Path, steps=40, config="tiny-gqe.json"):
    """A run directory trained on TEXT (one thread, a few seconds); reused when it exists."""
    run = work / ("run-" + config.removesuffix(".json"))
    if (run / "model.safetensors").exists():
        return run
    work.mkdir(parents=True, exist_ok=True)
    text = work / "text.txt"
    text.write_text(TEXT)
    subprocess.run([gqe_bin(), "train", "--config", str(REPO / "configs" / config), "--data", str(text), "--out",
                    str(run), "--steps", str(steps), "--threads", "1", "--sample-tokens", "0"],
                   check=True, capture_output=True, text=True, timeout=300)
    return run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`gqe serve` on a free loopback port, until stop() (SIGTERM; returns the exit status)."""

    def __init__(self, run, log: Path, *args):
        self.port = free_port()
        self.log = log
        self.proc = subprocess.Popen([gqe_bin(), "serve", "--checkpoint", str(run), "--port", str(self.port), *args],
                                     stdout=open(log, "w"), stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:%d" % self.port
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("gqe serve did not start:\n" + log.read_text())
            time.sleep(0.1)

    def stop(self, timeout=60):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -1

    def metrics(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            return r.read().decode()


def generate(run, prompt, *args):
    """`gqe generate`'s completion (stdout without the echoed prompt and the final newline)."""
    out = subprocess.run([gqe_bin(), "generate", "--checkpoint", str(run), "--prompt", prompt, "--threads", "1", *args],
                         check=True, capture_output=True, timeout=300).stdout.decode("utf-8", "replace")
    assert out.startswith(prompt) and out.endswith("\n"), out
    return out[len(prompt):-1]
