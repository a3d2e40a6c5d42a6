#!/usr/bin/env python3
"""gqe serve as users use it: the official `openai` package against a server started on a free loopback port over
a tiny run trained here. Completions (plain, streamed, seeded, greedy), chat (plain and streamed), models, the
errors, and exactness against `gqe generate` (--greedy and --seed), then SIGTERM: exit 0.

    python3 tests/serve/openai_client_test.py WORK_DIR      (GQE_BIN: the gqe executable; exit 77: no openai)
"""
import sys
import time
from pathlib import Path

try:
    import openai
except ImportError:
    print("skipped: the openai package is not installed (scripts/python-requirements.txt)")
    sys.exit(77)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_fixture as fx  # noqa: E402


def main(work):
    started = time.time()
    run = fx.train_tiny(work)
    srv = fx.Served(run, work / "serve.log", "--threads", "1", "--api-key", "sekret", "--max-batch", "4")
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="sekret", max_retries=0, timeout=120)
        models = client.models.list()
        assert [m.id for m in models.data] == [run.name], models
        model = run.name

        # Greedy: the server's text is gqe generate --greedy's, alone and with other requests running.
        prompts = ["In the beginning", "And the earth", "God created", "the heaven and"]
        want = {p: fx.generate(run, p, "--greedy", "--max-new-tokens", "24") for p in prompts}
        for p in prompts:
            c = client.completions.create(model=model, prompt=p, max_tokens=24, temperature=0)
            assert c.choices[0].text == want[p], (p, c.choices[0].text, want[p])
            assert c.choices[0].finish_reason == "length" and c.usage.completion_tokens == 24, c
        # Mixed: all four streamed at once (interleaved in one batch), each still gives its own text.
        streams = {p: client.completions.create(model=model, prompt=p, max_tokens=24, temperature=0, stream=True)
                   for p in prompts}
        for p, s in streams.items():
            text = "".join(ch.choices[0].text for ch in s if ch.choices)
            assert text == want[p], (p, text, want[p])

        # Seeded sampling: gqe generate --seed's stream (top_k as an extra field, as vLLM's).
        sampled = fx.generate(run, "In the beginning", "--seed", "7", "--temperature", "0.8", "--top-k", "40",
                              "--max-new-tokens", "20")
        c = client.completions.create(model=model, prompt="In the beginning", max_tokens=20, temperature=0.8, seed=7,
                                      extra_body={"top_k": 40})
        assert c.choices[0].text == sampled, (c.choices[0].text, sampled)

        # Echo, stop, n, logprobs.
        c = client.completions.create(model=model, prompt="In the", max_tokens=8, temperature=0, echo=True,
                                      logprobs=2, n=2)
        assert len(c.choices) == 2 and all(ch.text.startswith("In the") for ch in c.choices), c
        assert len(c.choices[0].logprobs.token_logprobs) == 8 and len(c.choices[0].logprobs.top_logprobs[0]) == 2
        full = want["In the beginning"]
        if len(full.strip()) > 3:
            stop = full.strip()[1:3]
            c = client.completions.create(model=model, prompt="In the beginning", max_tokens=24, temperature=0,
                                          stop=[stop])
            assert c.choices[0].text == full[:full.index(stop)] and c.choices[0].finish_reason == "stop", c

        # Chat, plain and streamed.
        msgs = [{"role": "system", "content": "You speak in verses."}, {"role": "user", "content": "In the"}]
        chat = client.chat.completions.create(model=model, messages=msgs, max_tokens=16, temperature=0)
        assert chat.choices[0].message.role == "assistant" and chat.choices[0].finish_reason in ("length", "stop")
        streamed = "".join(ch.choices[0].delta.content or "" for ch in
                           client.chat.completions.create(model=model, messages=msgs, max_tokens=16, temperature=0,
                                                          stream=True) if ch.choices)
        assert streamed == chat.choices[0].message.content, (streamed, chat.choices[0].message.content)

        # Errors: status, the OpenAI error body, the field named.
        def refused(cls, param, **kw):
            try:
                client.completions.create(**kw)
            except cls as e:
                body = e.body if isinstance(e.body, dict) else {}
                assert body.get("param") == param, (body, param)
                return
            raise AssertionError("accepted: %r" % kw)

        refused(openai.BadRequestError, "max_tokens", model=model, prompt="x", max_tokens=0)
        refused(openai.BadRequestError, "max_tokens", model=model, prompt="x", max_tokens=10 ** 6)
        refused(openai.BadRequestError, "temperature", model=model, prompt="x", extra_body={"temperature": "hot"})
        refused(openai.BadRequestError, "colour", model=model, prompt="x", extra_body={"colour": "red"})
        refused(openai.BadRequestError, "prompt", model=model, prompt="x" * 5000)
        refused(openai.NotFoundError, "model", model="gpt-4o", prompt="x")
        try:
            openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0).models.list()
            raise AssertionError("a wrong key was accepted")
        except openai.AuthenticationError:
            pass
        # Still up.
        c = client.completions.create(model=model, prompt="In", max_tokens=2)
        assert len(c.choices[0].text) >= 0 and c.usage.completion_tokens == 2
        assert "gqe_requests_finished_total" in srv.metrics()
    finally:
        rc = srv.stop()
    assert rc == 0, "gqe serve exited %s on SIGTERM:\n%s" % (rc, (work / "serve.log").read_text())
    print("openai client test: ok (%.1f s, openai %s)" % (time.time() - started, openai.__version__))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/gqe-serve-openai"))
