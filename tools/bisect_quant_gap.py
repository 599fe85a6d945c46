#!/usr/bin/env python3
"""Where do Kindling's and llama.cpp's logits part on a quantized model?

Builds GGUF files in which only some tensors keep their Q8_0 blocks and the
rest are f32, then compares the top logits after a short prompt, Kindling
(`next-token --quantized`) against llama.cpp (f32 KV cache, no flash
attention). docs/quantization.md has the findings.

    .venv/bin/python tools/check_llamacpp_quant.py --model SmolLM2-135M-Instruct.Q4_1.gguf --kindling target/release/kindling
    target/release/kindling quantize --model SmolLM2-135M-Instruct.Q4_1.gguf --type f32 --out /tmp/kindling-llamacpp/f32.gguf
    .venv/bin/python tools/bisect_quant_gap.py --kindling target/release/kindling
"""
import argparse
import json
import subprocess
from pathlib import Path

import gguf
import llama_cpp
import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

GROUPS = {
    "head": lambda n: n == "token_embd.weight",
    "q_k": lambda n: "attn_q." in n or "attn_k." in n,
    "v": lambda n: "attn_v." in n,
    "o": lambda n: "attn_output" in n,
    "gate_up": lambda n: "ffn_gate" in n or "ffn_up" in n,
    "down": lambda n: "ffn_down" in n,
    "all": lambda n: True,
}


def copy_metadata(src: GGUFReader, w: GGUFWriter):
    for k, fld in src.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        vt = fld.types[0]
        if vt == GGUFValueType.ARRAY:
            et = fld.types[1]
            if et == GGUFValueType.STRING:
                val = [bytes(fld.parts[i]).decode("utf-8", errors="surrogateescape") for i in fld.data]
            else:
                val = [fld.parts[i].tolist()[0] for i in fld.data]
            w.add_key_value(k, val, vt, sub_type=et)
        elif vt == GGUFValueType.STRING:
            w.add_key_value(k, bytes(fld.parts[fld.data[0]]).decode("utf-8", errors="surrogateescape"), vt)
        else:
            w.add_key_value(k, fld.parts[fld.data[0]].tolist()[0], vt)


def mixed(q: GGUFReader, f: GGUFReader, out: Path, keep):
    dense = {t.name: t for t in f.tensors}
    w = GGUFWriter(str(out), "llama")
    copy_metadata(q, w)
    for t in q.tensors:
        if keep(t.name) and t.tensor_type.name == "Q8_0":
            raw = np.array(t.data)
            w.add_tensor(t.name, raw, raw_shape=raw.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            d = dense[t.name]
            shape = [int(x) for x in reversed(d.shape)]
            w.add_tensor(t.name, np.array(d.data, dtype=np.float32).reshape(shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def top2_kindling(exe, path, text):
    out = subprocess.run([exe, "next-token", "--model", str(path), "--quantized", "--text", text,
                          "--top", "2", "--json", "--threads", "1"], capture_output=True, text=True, check=True)
    v = json.loads(out.stdout)
    return v["ids"], [(t["id"], round(t["logit"], 4)) for t in v["top"]]


def top2_llamacpp(path, ids):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=1, n_batch=64, verbose=False,
                          logits_all=True, type_k=0, type_v=0, flash_attn=False)
    llm.eval(ids)
    s = np.array(llm.scores[len(ids) - 1])
    return [(int(t), round(float(s[t]), 4)) for t in np.argsort(-s)[:2]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kindling", required=True)
    ap.add_argument("--work", default=Path("/tmp/kindling-llamacpp"), type=Path)
    ap.add_argument("--text", default="def fib")
    a = ap.parse_args()
    q = GGUFReader(str(a.work / "kindling-q8_0.gguf"))
    f = GGUFReader(str(a.work / "f32.gguf"))
    for name, keep in GROUPS.items():
        out = a.work / f"mix-{name}.gguf"
        mixed(q, f, out, keep)
        ids, k = top2_kindling(a.kindling, out, a.text)
        print(f"Q8_0 only in {name:8}: Kindling {k}  llama.cpp {top2_llamacpp(out, ids)}")


if __name__ == "__main__":
    main()
