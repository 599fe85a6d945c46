#!/usr/bin/env python3
"""Dump every node llama.cpp computes (its op, shape and f32 values) while
it evaluates tokens one call at a time, for bit-level comparisons with
Kindling's decode.

    .venv/bin/python tools/ggml_dump.py FILE.gguf OUT_DIR ID [ID ...] [--prompt-len N] [--no-nodes]

The first N ids (default 1) go in one llama_decode call (the prompt
path), then each further id in its own call (the decode path).
`last_logits.f32` holds each call's last row of logits, as
`cargo run --example gguf_logits` writes Kindling's. OUT_DIR gets
`nodes.tsv` (call, index, name, op, type, shape, file) and one little-endian
f32 file per node per call (`c{call}_{index}.f32`), the tensor read in its
logical order (ne0 fastest) whatever its strides. The weights are not
dumped (their bytes are the GGUF's). f32 KV cache, no flash attention,
one thread: the settings Kindling is compared under.
"""
import ctypes
import os
import sys

import numpy as np
import llama_cpp
import llama_cpp.llama as llama_mod

LIB = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
base = ctypes.CDLL(os.path.join(LIB, "libggml-base.so"))
base.ggml_op_desc.restype = ctypes.c_char_p
base.ggml_op_desc.argtypes = [ctypes.c_void_p]
base.ggml_type_name.restype = ctypes.c_char_p
base.ggml_type_name.argtypes = [ctypes.c_int]


class Tensor(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def read_f32(t):
    """The tensor's values in logical order, or None when it is not f32."""
    if t.type != 0 or not t.data:
        return None
    ne = list(t.ne)
    nb = list(t.nb)
    span = sum((n - 1) * s for n, s in zip(ne, nb)) + 4
    raw = (ctypes.c_char * span).from_address(t.data)
    flat = np.frombuffer(raw, dtype=np.uint8)
    arr = np.lib.stride_tricks.as_strided(
        flat.view(np.float32) if nb[0] == 4 and all(s % 4 == 0 for s in nb) else None,
        shape=ne[::-1], strides=nb[::-1])
    return np.ascontiguousarray(arr)


def main():
    argv = sys.argv[1:]
    prompt_len = 1
    if "--prompt-len" in argv:
        i = argv.index("--prompt-len")
        prompt_len = int(argv[i + 1])
        del argv[i:i + 2]
    nodes = "--no-nodes" not in argv
    args = [a for a in argv if not a.startswith("--")]
    path, out, ids = args[0], args[1], [int(a) for a in args[2:]]
    os.makedirs(out, exist_ok=True)
    rows = []
    state = {"call": 0, "index": 0}

    @llama_cpp.ggml_backend_sched_eval_callback
    def cb(tp, ask, _user):
        if ask:
            return nodes
        t = Tensor.from_address(tp)
        name = t.name.decode(errors="replace")
        i = state["index"]
        state["index"] += 1
        vals = read_f32(t)
        fname = ""
        if vals is not None:
            fname = f"c{state['call']}_{i}.f32"
            vals.astype("<f4").tofile(os.path.join(out, fname))
        srcs = []
        for s in t.src:
            if s:
                st = Tensor.from_address(s)
                srcs.append(st.name.decode(errors="replace"))
        rows.append((state["call"], i, name, base.ggml_op_desc(tp).decode(),
                     base.ggml_type_name(t.type).decode(), "x".join(str(n) for n in t.ne),
                     fname, ",".join(srcs)))
        return True

    default = llama_cpp.llama_context_default_params

    def with_cb():
        p = default()
        p.cb_eval = cb
        return p

    llama_mod.llama_cpp.llama_context_default_params = with_cb
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=1, n_threads_batch=1, verbose=False,
                          type_k=0, type_v=0, flash_attn=False, logits_all=True, n_batch=512)
    llama_mod.llama_cpp.llama_context_default_params = default
    calls = [ids[:prompt_len]] + [[i] for i in ids[prompt_len:]]
    last = []
    for c, part in enumerate(calls):
        state["call"], state["index"] = c, 0
        llm.eval(part)
        last.append(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32))
    np.stack(last).astype("<f4").tofile(os.path.join(out, "last_logits.f32"))
    logits = np.array(llm.scores[: llm.n_tokens], dtype=np.float32)
    logits.astype("<f4").tofile(os.path.join(out, "logits.f32"))
    with open(os.path.join(out, "nodes.tsv"), "w") as f:
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    print(f"{len(rows)} nodes over {len(calls)} calls; logits {logits.shape} in {out}")


if __name__ == "__main__":
    main()
