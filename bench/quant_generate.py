#!/usr/bin/env python3
"""Greedy decoding speed, Kindling against llama.cpp on the same GGUF files,
interleaved in one run (Kindling, llama.cpp, Kindling, llama.cpp ...).

    .venv/bin/python bench/quant_generate.py --kindling target/release/kindling \
        --files /tmp/kindling-llamacpp/kindling-q4_0.gguf ... [--threads 1 2] [--tokens 128]

`--kindling` takes several binaries (e.g. a build before a change and one
after): each round runs all of them, then llama.cpp, and each is reported
against that round's llama.cpp figure.

`--prompt-file F` measures decoding after a long prompt (the attention's
share grows with the context).

Kindling: `kindling generate --quantized --temperature 0` (its
generate_tokens_per_sec: decode only, after the prompt). llama.cpp (through
llama-cpp-python): the same prompt evaluated, then `tokens` single-token
evals with greedy choice, timed after the prompt; f32 KV cache like
Kindling's.
"""
import argparse, json, subprocess, time
import llama_cpp
import numpy as np

PROMPT = "Once upon a time"
CTX = 512


def kindling(exe, f, threads, tokens):
    out = subprocess.run([exe, "generate", "--model", f, "--quantized", "--prompt", PROMPT,
                          "--temperature", "0", "--max-new-tokens", str(tokens), "--threads", str(threads),
                          "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["generate_tokens_per_sec"]


def llamacpp(f, threads, tokens):
    # logits_all: without it llama-cpp-python leaves the scores row empty and
    # the loop would feed token 0 every step (same work per token, wrong
    # tokens). A one-token decode computes one row of logits either way.
    llm = llama_cpp.Llama(model_path=f, n_ctx=CTX, n_threads=threads, n_threads_batch=threads,
                          verbose=False, type_k=0, type_v=0, flash_attn=False, logits_all=True)
    ids = llm.tokenize(PROMPT.encode(), add_bos=False)
    llm.eval(ids)
    t = time.perf_counter()
    for _ in range(tokens):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([nxt])
    return tokens / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kindling", nargs="+", required=True)
    ap.add_argument("--files", nargs="+", required=True)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prompt-file", help="a long prompt instead of \"Once upon a time\" "
                    "(generation speed at that context length)")
    a = ap.parse_args()
    global PROMPT, CTX
    if a.prompt_file:
        PROMPT = open(a.prompt_file, encoding="utf-8").read()
        n = len(llama_cpp.Llama(model_path=a.files[0], n_ctx=64, verbose=False,
                                vocab_only=True).tokenize(PROMPT.encode(), add_bos=False))
        CTX = n + a.tokens + 64
        print(f"prompt: {n} tokens", flush=True)
    for f in a.files:
        for th in a.threads:
            ks, ls = [[] for _ in a.kindling], []
            for _ in range(a.rounds):
                for exe, k in zip(a.kindling, ks):
                    k.append(kindling(exe, f, th, a.tokens))
                ls.append(llamacpp(f, th, a.tokens))
            for exe, k in zip(a.kindling, ks):
                pairs = ", ".join(f"{x:.0f}/{l:.0f}={x / l:.2f}x" for x, l in zip(k, ls))
                print(f"{f.split('/')[-1]}, {th} thread(s), {exe}: Kindling/llama.cpp tokens/s {pairs}",
                      flush=True)


if __name__ == "__main__":
    main()
