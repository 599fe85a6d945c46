#!/usr/bin/env python3
"""Checks `kindling serve` with the official `openai` Python client.

Starts `kindling serve` on a free port (or uses --url), then through the
client: lists models, asks a chat completion whole and streamed (the two
must agree at temperature 0), a plain completion, and checks that bad
requests raise the client's typed errors (BadRequestError, NotFoundError,
AuthenticationError). Prints one line per check and exits non-zero on the
first failure.

    .venv/bin/pip install openai
    .venv/bin/python tools/check_openai_client.py --model SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse
import os
import re
import subprocess
import sys
import time

import openai


def start(binary, model, key, extra):
    p = subprocess.Popen(
        [binary, "serve", "--model", model, "--port", "0", "--api-key", key] + extra,
        stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = re.search(r"http://(\S+)", line)
        if m:
            return p, m.group(1)
    raise SystemExit("the server did not start: " + (p.stderr.read() or ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--kindling", default="target/release/kindling")
    ap.add_argument("--threads", default="2")
    a = ap.parse_args()
    key = "check-" + str(os.getpid())
    proc, addr = start(a.kindling, a.model, key, ["--threads", a.threads])
    try:
        base = f"http://{addr}/v1"
        client = openai.OpenAI(base_url=base, api_key=key)
        models = client.models.list()
        name = models.data[0].id
        print(f"ok models: {name}")
        msgs = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
        t0 = time.time()
        whole = client.chat.completions.create(model=name, messages=msgs, temperature=0, max_tokens=40)
        text = whole.choices[0].message.content
        print(f"ok chat ({time.time() - t0:.2f} s, {whole.usage.completion_tokens} tokens, "
              f"finish {whole.choices[0].finish_reason}): {text!r}")
        pieces = []
        stream = client.chat.completions.create(model=name, messages=msgs, temperature=0, max_tokens=40,
                                                stream=True, stream_options={"include_usage": True})
        usage = None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage:
                usage = chunk.usage
        assert "".join(pieces) == text, ("streamed", "".join(pieces), "whole", text)
        assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens, usage
        print(f"ok chat streamed: {len(pieces)} pieces, the same text, usage {usage.completion_tokens} tokens")
        c = client.completions.create(model=name, prompt="The three primary colours are", max_tokens=16,
                                      temperature=0)
        print(f"ok completion: {c.choices[0].text!r}")
        for what, call, err in [
            ("max_tokens 0", lambda: client.chat.completions.create(
                model=name, messages=msgs, max_tokens=0), openai.BadRequestError),
            ("unknown model", lambda: client.chat.completions.create(
                model="gpt-9", messages=msgs, max_tokens=4), openai.NotFoundError),
            ("unknown role", lambda: client.chat.completions.create(
                model=name, messages=[{"role": "wizard", "content": "hi"}], max_tokens=4),
             openai.BadRequestError),
            ("wrong key", lambda: openai.OpenAI(base_url=base, api_key="nope").models.list(),
             openai.AuthenticationError),
        ]:
            try:
                call()
            except err as e:
                print(f"ok {what}: {type(e).__name__} {e.status_code}: {e.body.get('message') if isinstance(e.body, dict) else e.body}")
            else:
                raise SystemExit(f"FAILED {what}: no error")
        print("all checks passed")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
