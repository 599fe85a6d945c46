#!/usr/bin/env python3
"""Prompt-processing speed, Kindling against llama.cpp on the same GGUF
files, interleaved in one run (each Kindling binary, then llama.cpp).

    .venv/bin/python bench/quant_prefill.py --kindling OLD/kindling NEW/kindling \
        --files kindling-q8_0.gguf ... [--threads 1 2] [--prompt-tokens 256] [--rounds 3]

The prompt is a fixed English text cut to `--prompt-tokens` tokens by the
file's own tokenizer (both programs see the same ids). Kindling:
`kindling generate --quantized --max-new-tokens 1 --json`, its
`prefill_tokens_per_sec` (the prompt's one forward pass). llama.cpp
(llama-cpp-python, f32 KV cache, no flash attention, n_batch 512): the
wall time of one `eval` of the whole prompt on a fresh context.
"""
import argparse, json, subprocess, time
import llama_cpp

TEXT = ("The history of the printing press begins in the fifteenth century, when craftsmen in the cities of "
        "the Rhine learned to cast letters in metal and to press inked type onto paper. Books that had taken "
        "a scribe a year could now be made in weeks, and ideas moved faster than ever before across Europe. ")


def prompt_for(f, n):
    llm = llama_cpp.Llama(model_path=f, n_ctx=64, verbose=False, vocab_only=True)
    text = TEXT
    while len(llm.tokenize(text.encode(), add_bos=False)) < n:
        text += TEXT
    ids = llm.tokenize(text.encode(), add_bos=False)[:n]
    return llm.detokenize(ids).decode(), ids


def kindling(exe, f, threads, prompt):
    out = subprocess.run([exe, "generate", "--model", f, "--quantized", "--prompt", prompt,
                          "--temperature", "0", "--max-new-tokens", "1", "--threads", str(threads),
                          "--json"], capture_output=True, text=True, check=True)
    v = json.loads(out.stdout.strip().splitlines()[-1])
    return v["prefill_tokens_per_sec"], v["prompt_tokens"]


def llamacpp(f, threads, ids):
    llm = llama_cpp.Llama(model_path=f, n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                          n_batch=512, verbose=False, type_k=0, type_v=0, flash_attn=False)
    t = time.perf_counter()
    llm.eval(ids)
    return len(ids) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kindling", nargs="+", required=True)
    ap.add_argument("--files", nargs="+", required=True)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    for f in a.files:
        prompt, ids = prompt_for(f, a.prompt_tokens)
        for th in a.threads:
            ks, ls, n_k = [[] for _ in a.kindling], [], None
            for _ in range(a.rounds):
                for exe, k in zip(a.kindling, ks):
                    tps, n_k = kindling(exe, f, th, prompt)
                    k.append(tps)
                ls.append(llamacpp(f, th, ids))
            for exe, k in zip(a.kindling, ks):
                pairs = ", ".join(f"{x:.0f}/{l:.0f}={x / l:.2f}x" for x, l in zip(k, ls))
                print(f"{f.split('/')[-1]}, {th} thread(s), {len(ids)} (Kindling {n_k}) prompt tokens, {exe}: "
                      f"Kindling/llama.cpp prompt tokens/s {pairs}", flush=True)


if __name__ == "__main__":
    main()
