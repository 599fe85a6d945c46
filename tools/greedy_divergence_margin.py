#!/usr/bin/env python3
"""Where Kindling's greedy continuation first parts from llama.cpp's on the
same quantized GGUF, and how close llama.cpp's own top two logits were
there (a near-tie is where a last-bit difference decides the token).

For each prompt: Kindling's 64 greedy ids (`kindling generate --quantized
--temperature 0 --json`), llama.cpp's 64 greedy ids (llama-cpp-python,
f32 KV cache, logits_all), the first index where they differ, and at that
index llama.cpp's logit gap between its choice and Kindling's choice, and
between its first and second token.

    .venv/bin/python tools/greedy_divergence_margin.py target/release/kindling /tmp/kindling-llamacpp/kindling-q8_0.gguf ...
"""
import json
import subprocess
import sys

import llama_cpp
import numpy as np

PROMPTS = ["Once upon a time", "def fib(n):", "The capital of France is", "Water boils at"]
N = 64


def kindling_ids(exe, f, prompt):
    out = subprocess.run([exe, "generate", "--model", f, "--quantized", "--prompt", prompt,
                          "--temperature", "0", "--max-new-tokens", str(N), "--threads", "1", "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["ids"]


def main():
    exe, files = sys.argv[1], sys.argv[2:]
    for f in files:
        llm = llama_cpp.Llama(model_path=f, n_ctx=512, n_threads=1, verbose=False, type_k=0, type_v=0,
                              flash_attn=False, logits_all=True)
        for p in PROMPTS:
            ours = kindling_ids(exe, f, p)
            llm.reset()
            llm.eval(llm.tokenize(p.encode(), add_bos=False))
            theirs, gaps = [], []
            for i in range(N):
                row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
                top2 = np.argsort(row)[-2:][::-1]
                theirs.append(int(top2[0]))
                gaps.append((row, float(row[top2[0]] - row[top2[1]])))
                # Follow Kindling's tokens, so the prefix stays shared.
                nxt = ours[i] if i < len(ours) else int(top2[0])
                llm.eval([nxt])
            d = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
            name = f.split("/")[-1]
            if d is None:
                print(f"{name} {p!r}: all {min(len(ours), N)} tokens agree")
                continue
            row, top_gap = gaps[d]
            print(f"{name} {p!r}: first difference at token {d}; llama.cpp's logit gap there: "
                  f"its choice − Kindling's = {row[theirs[d]] - row[ours[d]]:.4f}, "
                  f"its top-1 − top-2 = {top_gap:.4f}; median top-1 − top-2 gap over the {N} steps: "
                  f"{np.median([g for _, g in gaps]):.3f}", flush=True)


if __name__ == "__main__":
    main()
