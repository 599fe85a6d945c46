#!/usr/bin/env python3
"""Kindling's quantizer and quantized kernels against llama.cpp, on SmolLM2.

    .venv/bin/pip install cmake ninja scikit-build-core
    .venv/bin/pip install --no-build-isolation llama-cpp-python
    cargo build --release
    .venv/bin/python tools/check_llamacpp_quant.py \
        --model ../shared/data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        --kindling target/release/kindling [--write-fixture]

For each of q8_0, q4_0, q4_1:
  1. llama.cpp's quantizer (`llama_model_quantize`, no importance matrix,
     requantizing the Q4_1 source as `llama-quantize --allow-requantize`
     does) and `kindling quantize` write the model in that type; every
     tensor's type, shape and bytes are compared.
  2. llama.cpp loads Kindling's file and continues a prompt greedily; the
     token ids go into the fixture the Rust test compares
     `kindling generate --quantized` with (tests never run Python).

The fixture (crates/kindling-cli/tests/fixtures/llamacpp_quant.json) holds,
per type, the SHA-256 of each tensor's bytes in llama.cpp's file and
llama.cpp's greedy ids on Kindling's file.
"""

import argparse
import ctypes
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import llama_cpp
from gguf import GGUFReader

FTYPES = {"q8_0": 7, "q4_0": 2, "q4_1": 3}
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time",
]
NEW_TOKENS = 32
ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "crates/kindling-cli/tests/fixtures/llamacpp_quant.json"


def llamacpp_quantize(src: Path, dst: Path, ftype: int):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize failed ({rc}) for {dst}")


def tensors(path: Path):
    r = GGUFReader(str(path))
    return {
        t.name: (t.tensor_type.name, [int(x) for x in t.shape], bytes(t.data.tobytes()))
        for t in r.tensors
    }


def greedy(path: Path, prompt: str):
    # f32 keys and values and no flash attention: Kindling's attention is
    # f32, and llama.cpp's default f16 cache alone moves logits by ~0.1.
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=256,
        n_threads=2,
        n_batch=64,
        verbose=False,
        logits_all=False,
        type_k=0,
        type_v=0,
        flash_attn=False,
    )
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=False)
    out = []
    for tok in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
        if tok == llm.token_eos() or len(out) >= NEW_TOKENS:
            break
        out.append(int(tok))
    return [int(i) for i in ids], out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--kindling", required=True, type=Path)
    ap.add_argument("--work", default=Path("/tmp/kindling-llamacpp"), type=Path)
    ap.add_argument("--write-fixture", action="store_true")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    fixture = {"llama_cpp_python": llama_cpp.__version__, "source": a.model.name, "types": {}}
    ok = True
    for name, ftype in FTYPES.items():
        ref, ours = a.work / f"llamacpp-{name}.gguf", a.work / f"kindling-{name}.gguf"
        llamacpp_quantize(a.model, ref, ftype)
        subprocess.run(
            [str(a.kindling), "quantize", "--model", str(a.model), "--type", name, "--out", str(ours), "--force"],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        tr, tk = tensors(ref), tensors(ours)
        same = [n for n in tr if n in tk and tr[n] == tk[n]]
        differ = [n for n in tr if n not in same]
        extra = [n for n in tk if n not in tr]
        print(f"{name}: {len(same)}/{len(tr)} tensors identical (type, shape, bytes)", end="")
        if differ or extra:
            ok = False
            n = (differ or extra)[0]
            print(f"; first difference: {n}: llama.cpp {tr.get(n, ('-',))[:2]} kindling {tk.get(n, ('-',))[:2]}")
        else:
            print()
        runs = []
        for p in PROMPTS:
            prompt_ids, ids = greedy(ours, p)
            runs.append({"prompt": p, "prompt_ids": prompt_ids, "greedy_ids": ids})
            print(f"  llama.cpp on kindling-{name}.gguf, {p!r}: {len(ids)} ids")
        fixture["types"][name] = {
            "tensor_sha256": {n: hashlib.sha256(tr[n][2]).hexdigest() for n in sorted(tr)},
            "tensor_types": {n: tr[n][0] for n in sorted(tr)},
            "greedy": runs,
        }
    if a.write_fixture:
        FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
        print(f"wrote {FIXTURE}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
