#!/usr/bin/env python3
"""Encode throughput of the Python reference tokenizers, for
bench/tokenizer_compare.sh: the same text, encoded whole, best of N, one
thread. Prints one JSON line: {"encode_mb_per_sec", "tokens", ...}.

    .venv/bin/python bench/tokenizers_ref.py --lib tiktoken --tokenizer cl100k_base --file input.txt
    .venv/bin/python bench/tokenizers_ref.py --lib tokenizers --tokenizer path/to/tokenizer.json --file input.txt

--lib tiktoken:   --tokenizer r50k_base|cl100k_base|o200k_base, ranks read from
                  --data-dir/tokenizers/tiktoken/<name>.tiktoken (no network)
--lib tokenizers: --tokenizer a tokenizer.json, or a folder with encoder.json + vocab.bpe
"""

import argparse
import json
import os
import time


def tiktoken_encoder(name, data_dir):
    import tiktoken
    import tiktoken.load
    from tiktoken_ext import openai_public

    path = os.path.join(data_dir, "tokenizers/tiktoken", name + ".tiktoken")
    real = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda url, expected_hash=None: tiktoken.load.load_tiktoken_bpe(
        path, expected_hash=expected_hash)
    try:
        params = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = real
    params.pop("explicit_n_vocab", None)
    enc = tiktoken.Encoding(**params)
    return lambda text: enc.encode(text, allowed_special="all"), tiktoken.__version__


def hf_encoder(spec):
    import tokenizers
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if os.path.isdir(spec):
        tok = Tokenizer(models.BPE.from_file(os.path.join(spec, "encoder.json"), os.path.join(spec, "vocab.bpe")))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    else:
        tok = Tokenizer.from_file(spec)
    return lambda text: tok.encode(text, add_special_tokens=False).ids, tokenizers.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", choices=["tiktoken", "tokenizers"], required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    args = ap.parse_args()
    # One thread, as `kindling bench tokenizer` encodes one text on one thread.
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"

    t0 = time.perf_counter()
    if args.lib == "tiktoken":
        encode, version = tiktoken_encoder(args.tokenizer, args.data_dir)
    else:
        encode, version = hf_encoder(args.tokenizer)
    load_ms = (time.perf_counter() - t0) * 1e3
    # newline="": keep CRLF as it is in the file (Kindling reads bytes).
    with open(args.file, encoding="utf-8", newline="") as f:
        text = f.read()
    n_bytes = len(text.encode("utf-8"))
    best, tokens = float("inf"), 0
    for _ in range(max(1, args.repeat)):
        t = time.perf_counter()
        tokens = len(encode(text))
        best = min(best, time.perf_counter() - t)
    print(json.dumps({
        "lib": f"{args.lib} {version}",
        "tokenizer": args.tokenizer,
        "bytes": n_bytes,
        "tokens": tokens,
        "encode_ms": best * 1e3,
        "encode_mb_per_sec": n_bytes / 1e6 / best,
        "load_ms": load_ms,
    }))


if __name__ == "__main__":
    main()
