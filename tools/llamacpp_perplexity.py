#!/usr/bin/env python3
"""Perplexity of a text under a GGUF model in llama.cpp (llama-cpp-python),
computed exactly as `kindling eval-lm perplexity` computes it, so the two can
be set side by side on the same file and the same tokens.

The method (docs/eval-lm.md, crates/kindling-train/src/eval_lm/perplexity.rs),
written out again here:

  - the text is tokenized with no BOS token (Kindling's `tokenizer.encode`
    adds none); with --kindling BIN the ids are Kindling's own
    (`BIN tokenize --tokenizer MODEL --file TEXT --json`), and llama.cpp's
    tokenization (add_bos=False, special=False) is compared with them;
  - windows of `max_length` tokens start every `stride` tokens: window k is
    [k*stride, min(k*stride + max_length, n)); the tokens past the previous
    window's end are scored (a window's first token never is), each from the
    window's tokens before it; the loop stops at the window that reaches the
    last token;
  - every window is evaluated from scratch (llm.reset() and an empty KV
    cache), in one batch;
  - log p is a float64 log-softmax of llama.cpp's logits (logits_all=True);
    NLL = -sum of log p over the scored tokens, nats/token = NLL / scored,
    perplexity = exp(nats/token).

This is not llama.cpp's `llama-perplexity` tool, which adds a BOS token,
cuts the text into disjoint chunks of n_ctx and scores only the second half
of each chunk; the model numerics (weights, quantized matmuls, KV cache of
type f16 by default) are llama.cpp's.

Prints a human line on stderr and one JSON object on stdout (with --json,
only the JSON), with the same keys as Kindling's --json: perplexity,
nats_per_token, nll_sum, tokens, scored, windows, max_length, stride,
seconds; plus tokens_match (llama.cpp's ids == Kindling's) and
llama_tokens.

Run (CPU, about 1-2.5 minutes for a 9,000-token text at 512/256 on 1 thread;
on a busy 2-core machine --threads 1 was 5x faster than 2, same numbers):

  /work/main/.venv/bin/python tools/llamacpp_perplexity.py \
      --model /tmp/kindling-llamacpp/kindling-q8_0.gguf \
      --text /tmp/ppl/shakespeare-heldout.txt --max-length 512 --stride 256 \
      --kindling target/release/kindling --threads 1 --kv-type f32 --json
"""

import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np
from llama_cpp import Llama
import llama_cpp

GGML_TYPE = {"f32": 0, "f16": 1}


def windows(n_tokens, max_length, stride):
    """(begin, end, score_from) of every window, as Kindling's `windows`."""
    if max_length < 2:
        raise SystemExit(f"--max-length must be at least 2, got {max_length}")
    if stride < 1 or stride > max_length:
        raise SystemExit(f"--stride must be in 1..={max_length}, got {stride}")
    if n_tokens < 2:
        raise SystemExit(f"the text is {n_tokens} token(s); perplexity needs at least 2")
    out, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + max_length, n_tokens)
        out.append((begin, end, max(prev_end, begin + 1)))
        prev_end = end
        if end == n_tokens:
            break
    return out


def kindling_ids(binary, model, text_path):
    out = subprocess.run(
        [binary, "tokenize", "--tokenizer", model, "--file", text_path, "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["ids"]


def clear_memory(llm):
    """llm.reset() only rewinds n_tokens (eval() then drops the KV cells past
    it); clear the whole memory too, so no window sees another's cache."""
    llm.reset()
    try:
        mem = llama_cpp.llama_get_memory(llm._ctx.ctx)
        if mem is not None:
            llama_cpp.llama_memory_clear(mem, True)
    except AttributeError:  # older bindings: eval()'s seq_rm from 0 suffices
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a GGUF file")
    ap.add_argument("--text", required=True, help="a UTF-8 text file")
    ap.add_argument("--max-length", type=int, required=True)
    ap.add_argument("--stride", type=int, default=None, help="default: max-length / 2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--kindling",
        metavar="BIN",
        help="a kindling binary: score Kindling's token ids (from `BIN tokenize --json`) "
        "and report whether llama.cpp's tokenizer gives the same",
    )
    ap.add_argument(
        "--kv-type",
        choices=sorted(GGML_TYPE),
        default=None,
        help="KV cache type [default: llama.cpp's, f16]",
    )
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    a = ap.parse_args()
    max_length = a.max_length
    stride = a.stride if a.stride is not None else max(max_length // 2, 1)

    text = open(a.text, encoding="utf-8").read()
    t_load = time.time()
    kv = {}
    if a.kv_type is not None:
        kv = {"type_k": GGML_TYPE[a.kv_type], "type_v": GGML_TYPE[a.kv_type]}
    llm = Llama(
        model_path=a.model,
        n_ctx=max_length,
        n_batch=max_length,
        n_ubatch=max_length,
        logits_all=True,
        n_threads=a.threads,
        n_threads_batch=a.threads,
        verbose=False,
        **kv,
    )
    load_s = time.time() - t_load
    llama_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    if a.kindling:
        ids = kindling_ids(a.kindling, a.model, a.text)
        tokens_match = list(ids) == list(llama_ids)
    else:
        ids, tokens_match = llama_ids, None
    if not a.json:
        print(
            f"{len(ids)} tokens (llama.cpp's tokenizer: {len(llama_ids)}, "
            f"same ids as Kindling: {tokens_match})",
            file=sys.stderr,
        )

    ws = windows(len(ids), max_length, stride)
    nll_sum, scored = 0.0, 0
    t0 = time.time()
    for k, (begin, end, score_from) in enumerate(ws):
        clear_memory(llm)
        llm.eval(ids[begin:end])
        # Row j of the scores holds the logits for the token after position
        # begin + j; the scored tokens score_from..end are predicted by rows
        # score_from-1-begin .. end-2-begin.
        rows = np.asarray(llm.scores[score_from - 1 - begin : end - 1 - begin], dtype=np.float64)
        m = rows.max(axis=1, keepdims=True)
        logz = m[:, 0] + np.log(np.exp(rows - m).sum(axis=1))
        targets = np.asarray(ids[score_from:end])
        lp = rows[np.arange(len(targets)), targets] - logz
        nll_sum -= float(lp.sum())
        scored += len(targets)
        if not a.json:
            print(f"\rwindow {k + 1}/{len(ws)}", end="", file=sys.stderr)
    secs = time.time() - t0
    nats = nll_sum / scored
    r = {
        "source": a.text,
        "model": a.model,
        "engine": f"llama-cpp-python {llama_cpp.__version__}",
        "kv_type": a.kv_type or "f16 (default)",
        "perplexity": math.exp(nats),
        "nats_per_token": nats,
        "nll_sum": nll_sum,
        "tokens": len(ids),
        "llama_tokens": len(llama_ids),
        "tokens_match": tokens_match,
        "scored": scored,
        "windows": len(ws),
        "max_length": max_length,
        "stride": stride,
        "seconds": secs,
        "load_seconds": load_s,
    }
    if not a.json:
        print(
            f"\rperplexity {r['perplexity']:.4f} ({nats:.4f} nats/token) over {scored} scored "
            f"tokens of {len(ids)}, {len(ws)} windows (max length {max_length}, stride {stride}); "
            f"{secs:.1f} s",
            file=sys.stderr,
        )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
